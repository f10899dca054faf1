package modemsim

import "github.com/warthog618/sms/encoding/gsm7/charset"

// warthog618/sms builds its GSM 7-bit tables lazily on first use, writing
// package variables without a lock: two goroutines encoding at once race
// (go test -race reports it). Building every table once here, before any
// goroutine can run, leaves only reads afterwards.
func init() {
	charset.DefaultDecoder()
	charset.DefaultEncoder()
	charset.DefaultExtDecoder()
	charset.DefaultExtEncoder()
	for nli := charset.Start; nli < charset.End; nli++ {
		charset.NewDecoder(nli)
		charset.NewEncoder(nli)
		charset.NewExtDecoder(nli)
		charset.NewExtEncoder(nli)
	}
}
