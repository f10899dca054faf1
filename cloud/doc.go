// Package cloud is the cloud bridge behind `simgate cloud`: it connects a
// cloud MQTT broker and the Super SIM REST API (Twilio's, or KORE's since it
// runs the service), so that a fleet application speaks MQTT to its devices
// end to end. The README's "Running the cloud bridge" is the user's guide;
// this is how it is built.
//
// # Pieces
//
//   - API (NewAPI) makes the API calls through twilio-go's generated
//     supersim service (rest/supersim/v1) on a client.BaseClient of its own,
//     which sends to any base URL (the emulator in tests), authenticates with
//     HTTP Basic (Twilio: Account SID or API key) or an OAuth2
//     client-credentials token (KORE: golang.org/x/oauth2/clientcredentials,
//     cached and renewed before it expires), and returns every answer other
//     than 2xx as an *APIError with the API's code and message and the
//     Retry-After it asked for.
//   - Verifier checks callbacks: TwilioVerifier (X-Twilio-Signature, with
//     twilio-go's RequestValidator) and KoreVerifier (kore-signature).
//   - Bridge (New, Run) is the MQTT client, the dispatcher of API calls and
//     the HTTP server for webhooks and status callbacks.
//
// # Durability
//
// Both directions go through the daemon's bbolt queue (transport.Queue),
// using its jobs and publications: a request from MQTT becomes a job in the
// lane of its SIM and is acknowledged to the broker only after the commit;
// the job is replaced by its result (a publication) in one commit when the
// API answered 2xx or a final 4xx. Before each call the job records that a
// call is under way, so after a crash the bridge looks for the command at
// the API before creating it again. Webhooks and callbacks become
// publications before they are answered 200; publications carry keys (sid
// and status, with the request's id after queued; or sid) so each is stored
// once, and a stored status callback names the request whose command it
// reports, even when the crash came before the API's answer was handled. One publisher sends them in
// commit order, one in flight, and removes each after its PUBACK.
//
// # Scale-out
//
// The bridge subscribes with the shared subscription
// $share/simgate-cloud/C/+/{sms,ip}/to_sim, so several bridges against one
// broker split the requests. Each has its own store. Callback URLs carry
// the request's id and SIM, so any instance can publish any callback.
package cloud
