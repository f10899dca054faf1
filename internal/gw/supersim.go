package gw

// Super SIM's fixed values (README, "Super SIM"): SMS Commands come from
// and go to SMSRecipient; IP Commands reach the device on IPCommandsPort
// over the APN, and the device sends its own to IPCommandsCloud.
const (
	SMSRecipient    = "000"
	IPCommandsPort  = 6969
	APN             = "super"
	IPCommandsCloud = "100.64.0.1:6969"
)
