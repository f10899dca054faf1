package modemsim

// The GSM 7-bit tables are built once, before any goroutine encodes.
import _ "github.com/simgate/simgate/internal/gsmtables"
