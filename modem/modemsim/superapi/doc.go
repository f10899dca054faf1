// Package superapi emulates the Super SIM REST API (the part of Twilio's and
// KORE's service that a fleet application talks to) on top of a simulated
// modem, so that a command can travel the whole path on one machine: from
// the API, through the simulated network, to the device gateway and back.
//
// The emulator serves, at http://ADDR/v1/..., the resources of the official
// OpenAPI document: SmsCommands, IpCommands, Sims, Fleets, UsageRecords,
// Networks and NetworkAccessProfiles, with their documented fields, paging
// and errors. Its account has one Sim, the SIM of the modemsim it is wired
// to, assigned to one Fleet. What the API is asked to do happens to the
// simulated modem:
//
//   - An SMS Command becomes an SMS from "000" on the modem's SIM; its
//     status goes queued, sent, delivered.
//   - An IP Command becomes a UDP datagram from 100.64.0.1 to DevicePort on
//     the module's socket (Options.DeviceMode "modem") or to
//     127.0.0.1:DevicePort from the emulator's own UDP socket (mode "os");
//     its status goes queued, sent.
//   - A command to a SIM that cannot receive it (not registered, no data
//     session) stays queued and is tried again until CommandTTL has passed;
//     then it is failed.
//   - An SMS the device sends to "000", and a datagram it sends to
//     100.64.0.1:6969 (or, in os mode, to the emulator's UDP socket), become
//     from_sim commands with status received, posted to the Fleet's
//     sms_commands_url / ip_commands_url and signed like the provider signs
//     (X-Twilio-Signature or kore-signature).
//   - Setting the Sim inactive deregisters the modem (+CEREG: 0); active or
//     ready registers it again.
//
// Every webhook and status callback is retried with backoff until the
// receiver answers 2xx or Options.WebhookAttempts is used up; every attempt
// is recorded with its status code in State, which tests read in-process
// or through the modemsim control socket (op "api-state"). InjectErrors
// makes the API answer 429 or 5xx for a while, as the real service
// sometimes does, so that a client's retries can be tested.
//
// The README's section "The Super SIM API emulator" is the user's guide.
package superapi
