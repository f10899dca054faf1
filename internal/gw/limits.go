package gw

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/warthog618/sms/encoding/gsm7"
)

// Limits of one Super SIM command.
const (
	MaxSMSSeptets = 160  // one SMS in the GSM 7-bit default alphabet
	MaxSMSUCS2    = 70   // one SMS in UCS-2, counted in UTF-16 code units
	MaxSMSBytes   = 140  // one SMS of 8-bit data
	MaxUDPPayload = 1300 // one IP Command
)

// SMSAlphabet names how an outgoing SMS is encoded.
type SMSAlphabet string

// The alphabets an outgoing SMS can use.
const (
	AlphabetGSM7 SMSAlphabet = "gsm7"
	AlphabetUCS2 SMSAlphabet = "ucs2"
	Alphabet8Bit SMSAlphabet = "8bit"
)

// CheckSMS reports the alphabet an outgoing payload will be sent in, or why
// it does not fit in one SMS. Text is sent in GSM 7-bit when every character
// is in the default alphabet or its extension table, else in UCS-2; binary
// payloads are sent as 8-bit data.
func CheckSMS(payload []byte, binary bool) (SMSAlphabet, error) {
	if binary {
		if len(payload) > MaxSMSBytes {
			return "", fmt.Errorf("binary payload is %d bytes, one SMS holds at most %d", len(payload), MaxSMSBytes)
		}
		return Alphabet8Bit, nil
	}
	if !utf8.Valid(payload) {
		return "", fmt.Errorf("text payload is not valid UTF-8")
	}
	if septets, err := EncodeGSM7(payload); err == nil {
		if len(septets) > MaxSMSSeptets {
			return "", fmt.Errorf("text needs %d GSM 7-bit characters, one SMS holds at most %d", len(septets), MaxSMSSeptets)
		}
		return AlphabetGSM7, nil
	}
	units := len(utf16.Encode([]rune(string(payload))))
	if units > MaxSMSUCS2 {
		return "", fmt.Errorf("text needs UCS-2 and is %d UTF-16 units long, one SMS holds at most %d", units, MaxSMSUCS2)
	}
	return AlphabetUCS2, nil
}

// CheckUDP reports why a payload cannot be sent as one IP Command.
func CheckUDP(payload []byte) error {
	if len(payload) > MaxUDPPayload {
		return fmt.Errorf("payload is %d bytes, one IP Command holds at most %d", len(payload), MaxUDPPayload)
	}
	return nil
}

// EncodeGSM7 packs text in the GSM 7-bit default alphabet, refusing a text
// with ESC (U+001B): the alphabet uses 0x1B as the escape to its extension
// table, so a lone ESC would arrive as another character. Such a text goes
// in UCS-2 instead.
func EncodeGSM7(text []byte) ([]byte, error) {
	if bytes.IndexByte(text, 0x1b) >= 0 {
		return nil, errors.New("ESC (U+001B) has no GSM 7-bit form")
	}
	return gsm7.Encode(text)
}
