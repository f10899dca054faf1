// Package gsmtables builds warthog618/sms's GSM 7-bit tables when it is
// imported. That library builds them lazily on first use, writing package
// variables without a lock, so two goroutines encoding at once race (a
// session decoding while the relay checks a request, or the simulator
// building a PDU). Built here, before any goroutine runs, they are only
// read afterwards. Import it for its effect:
//
//	import _ "github.com/simgate/simgate/internal/gsmtables"
package gsmtables

import "github.com/warthog618/sms/encoding/gsm7/charset"

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
