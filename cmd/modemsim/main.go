// Command modemsim is a simulated cellular modem on a pseudo-terminal, for
// tests, demos and hardware-in-loop runs without hardware.
//
// Serve mode creates the pty, symlinks its slave at -link and answers AT
// commands like the chosen module until SIGINT or SIGTERM:
//
//	modemsim -link PATH [-profile quectel|simcom|sim7080|ublox|sara-r5|generic] [-control SOCKET]
//	         [-listen unix:PATH]
//	         [-baud N] [-capacity N] [-empty-read ok|error] [-boot-delay D] [-v]
//	         [-api ADDR [-account SID:TOKEN] [-api-key SK...:SECRET] [-signing twilio|kore]
//	          [-signing-secret S] [-api-device-mode modem|os] [-api-cloud-udp ADDR]]
//
// With -api it also serves the emulated Super SIM API at http://ADDR/v1/
// (package superapi); the credentials are printed at start.
//
// The same binary is the client of the control socket:
//
//	modemsim sms     -control SOCKET [-from 000] [-encoding gsm7|ucs2|8bit] [-parts N] [-ref16] [-order 3,1,2] TEXT
//	modemsim udp     -control SOCKET [-from 100.64.0.1:6969] -port N PAYLOAD_BASE64
//	modemsim state   -control SOCKET
//	modemsim unplug  -control SOCKET -for 3s
//	modemsim hang    -control SOCKET -for 10s
//	modemsim garbage -control SOCKET HEX
//	modemsim reset|drop-data -control SOCKET
//	modemsim register -control SOCKET -stat 5
//	modemsim close-socket -control SOCKET -id 0
//	modemsim faults  -control SOCKET [-chunked] [-chunk-max N] [-urc-noise P] [-send-error N]
//	                 [-socket-send-fail] [-error-on CMD]...
//	modemsim storm   -control SOCKET -n 3
//	modemsim api-state -control SOCKET
//
// With -encoding 8bit the sms TEXT is base64. state prints JSON.
package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/simgate/simgate/internal/cli"
	"github.com/simgate/simgate/modem/modemsim"
	"github.com/simgate/simgate/modem/modemsim/superapi"
)

const (
	exitOK    = cli.ExitOK
	exitError = 1
	exitUsage = cli.ExitUsage
)

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	if strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "-help" && args[0] != "--help" {
		return serve(args, stderr)
	}
	verb, rest := args[0], args[1:]
	switch verb {
	case "serve":
		return serve(rest, stderr)
	case "sms":
		return cmdSMS(rest, stdout, stderr)
	case "udp":
		return cmdUDP(rest, stderr)
	case "state":
		return cmdState(rest, stdout, stderr)
	case "unplug", "hang":
		return cmdDuration(verb, rest, stderr)
	case "garbage":
		return cmdGarbage(rest, stderr)
	case "reset", "drop-data":
		return cmdSimple(verb, rest, stderr)
	case "register":
		return cmdValue(verb, "stat", "registration state: 0 none, 1 home, 2 searching, 3 denied, 5 roaming", rest, stderr)
	case "close-socket":
		return cmdValue(verb, "id", "socket id the network closes", rest, stderr)
	case "storm":
		return cmdValue("boot-storm", "n", "number of reboots", rest, stderr)
	case "signal":
		return cmdValue(verb, "rssi", "RSSI 0..31, 99 unknown", rest, stderr)
	case "faults":
		return cmdFaults(rest, stderr)
	case "api-state":
		return cmdAPIState(rest, stdout, stderr)
	default:
		return cli.OtherVerb("modemsim", verb, usage, stdout, stderr)
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  modemsim -link PATH [-profile quectel|simcom|sim7080|ublox|sara-r5|generic] [-control SOCKET]
           [-listen unix:PATH] [-baud N] [-capacity N] [-empty-read ok|error] [-boot-delay D] [-v]
           [-api ADDR [-account SID:TOKEN] [-api-key SK...:SECRET] [-signing twilio|kore]
            [-signing-secret S] [-api-device-mode modem|os] [-api-cloud-udp ADDR]]
  modemsim sms     -control SOCKET [-from 000] [-encoding gsm7|ucs2|8bit] [-parts N] [-ref16] [-order 3,1,2] TEXT
                   (8bit: TEXT is base64)
  modemsim udp     -control SOCKET [-from 100.64.0.1:6969] -port N PAYLOAD_BASE64
  modemsim state   -control SOCKET            (JSON: stored SMS, sent SMS, sent UDP, sockets, counters)
  modemsim unplug  -control SOCKET -for 3s
  modemsim hang    -control SOCKET -for 10s
  modemsim garbage -control SOCKET HEX
  modemsim reset | drop-data -control SOCKET
  modemsim register -control SOCKET -stat N
  modemsim close-socket -control SOCKET -id N
  modemsim signal  -control SOCKET -rssi N
  modemsim storm   -control SOCKET -n N
  modemsim faults  -control SOCKET [-chunked] [-chunk-max N] [-urc-noise P] [-send-error N]
                   [-socket-send-fail] [-error-on CMD]...   (faults replace the active ones)
  modemsim api-state -control SOCKET         (JSON: the emulated API's resources and webhook deliveries)
`)
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	return cli.NewFlags("modemsim", name, stderr)
}

// parse parses args (some verbs take arguments after the flags) and
// reports the exit code when parsing ended the run.
func parse(fs *flag.FlagSet, args []string) (int, bool) { return cli.Parse(fs, args, false) }

func fail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "modemsim: %v\n", err)
	return exitError
}

func serve(args []string, stderr io.Writer) int {
	fs := newFlags("serve", stderr)
	var o modemsim.Options
	fs.StringVar(&o.Link, "link", "", "path to symlink the pty slave at (required)")
	fs.StringVar(&o.Profile, "profile", "quectel", "module: quectel, simcom, sim7080, ublox, sara-r5 or generic")
	fs.StringVar(&o.Control, "control", "", "unix socket for the control protocol")
	fs.IntVar(&o.Baud, "baud", 0, "pace output at this baud rate, 8N1 (0: unpaced)")
	fs.IntVar(&o.Capacity, "capacity", 30, "SMS slots on the SIM")
	fs.StringVar(&o.EmptyRead, "empty-read", "error", "AT+CMGR on an empty slot: ok or error")
	fs.DurationVar(&o.BootDelay, "boot-delay", 50*time.Millisecond, "power-up to first boot URC")
	fs.DurationVar(&o.SendDelay, "send-delay", 0, "time AT+CMGS and socket sends take")
	fs.DurationVar(&o.ReportDelay, "report-delay", 100*time.Millisecond, "time from an SMS sent with TP-SRR to its status report")
	fs.BoolVar(&o.SIM7080NoServer, "sim7080-no-server", false, "sim7080: refuse AT+CASERVER, as older firmware does")
	fs.DurationVar(&o.DeliveryGap, "delivery-gap", 0, "deliver SMS segments one at a time, this far apart (0: all at once)")
	fs.StringVar(&o.ICCID, "iccid", "", "SIM ICCID (default a Super SIM ICCID)")
	fs.StringVar(&o.IMEI, "imei", "", "module IMEI")
	listen := fs.String("listen", "", "also serve the AT port on a UNIX stream socket: unix:PATH (ModemManager's Test.SetProfile)")
	verbose := fs.Bool("v", false, "log every command")
	var a superapi.Options
	fs.StringVar(&a.Addr, "api", "", "serve the emulated Super SIM API at this address, e.g. 127.0.0.1:8088")
	account := fs.String("account", "", "the API account's SID:TOKEN (default generated)")
	apiKey := fs.String("api-key", "", "also accept this API Key SID:SECRET (SK...)")
	fs.StringVar(&a.Signing, "signing", "twilio", "how webhooks are signed: twilio or kore")
	fs.StringVar(&a.SigningSecret, "signing-secret", "", "KORE webhook secret (-signing kore)")
	fs.StringVar(&a.DeviceMode, "api-device-mode", "modem", "how IP Commands reach the device: modem (its socket) or os (127.0.0.1:DevicePort)")
	fs.StringVar(&a.CloudUDP, "api-cloud-udp", "127.0.0.1:0", "UDP address of the API's socket for os-mode devices (their ip.cloud)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if *account != "" {
		sid, tok, ok := strings.Cut(*account, ":")
		if !ok || sid == "" || tok == "" {
			fmt.Fprintln(stderr, "modemsim: -account wants SID:TOKEN")
			return exitUsage
		}
		a.AccountSID, a.AuthToken = sid, tok
	}
	if *apiKey != "" {
		sid, secret, ok := strings.Cut(*apiKey, ":")
		if !ok || sid == "" || secret == "" {
			fmt.Fprintln(stderr, "modemsim: -api-key wants SID:SECRET")
			return exitUsage
		}
		a.APIKeys = map[string]string{sid: secret}
	}
	if a.Addr == "" && (*account != "" || *apiKey != "" || a.SigningSecret != "") {
		fmt.Fprintln(stderr, "modemsim: -account, -api-key and -signing-secret need -api ADDR")
		return exitUsage
	}
	if *listen != "" {
		path, ok := strings.CutPrefix(*listen, "unix:")
		if !ok || path == "" {
			fmt.Fprintf(stderr, "modemsim: -listen %q: want unix:PATH\n", *listen)
			return exitUsage
		}
		o.Listen = path
	}
	if (o.Link == "" && o.Listen == "") || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "modemsim: -link PATH is required (or -listen unix:PATH) and takes no arguments")
		usage(stderr)
		return exitUsage
	}
	if o.Link == "" {
		// Served on the socket only: the pty still exists, under a private
		// name, so the socket reaches the same simulated port.
		dir, err := os.MkdirTemp("", "modemsim-")
		if err != nil {
			return fail(stderr, err)
		}
		defer os.RemoveAll(dir)
		o.Link = filepath.Join(dir, "tty")
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	// Caught from before the pty and the API exist, so that a signal sent
	// as soon as they answer stops them cleanly.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	sim, err := modemsim.Start(o)
	if err != nil {
		return fail(stderr, err)
	}
	var api *superapi.Emulator
	if a.Addr != "" {
		a.Modem = sim
		a.Logger = o.Logger
		api, err = superapi.Start(a)
		if err != nil {
			return fail(stderr, errors.Join(err, sim.Close()))
		}
		fmt.Fprintf(stderr, "modemsim: Super SIM API at %s/v1 account %s:%s sim %s fleet %s cloud-udp %s\n",
			api.URL(), api.AccountSID(), api.AuthToken(), api.SimSid(), api.FleetSid(), api.CloudUDP())
	}
	<-ctx.Done()
	var errs []error
	if api != nil {
		errs = append(errs, api.Close())
	}
	errs = append(errs, sim.Close())
	if err := errors.Join(errs...); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

func cmdAPIState(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("api-state", stderr)
	c := clientFlags(fs)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if !needControl(c, stderr) {
		return exitUsage
	}
	resp, err := c.Do(modemsim.Request{Op: superapi.StateOp})
	if err != nil {
		return fail(stderr, err)
	}
	var st superapi.State
	if err := json.Unmarshal(resp.Data, &st); err != nil {
		return fail(stderr, fmt.Errorf("api-state answer: %w", err))
	}
	return printJSON(stdout, stderr, st)
}

// clientFlags adds -control to fs and returns the client it configures.
func clientFlags(fs *flag.FlagSet) *modemsim.Client {
	c := &modemsim.Client{}
	fs.StringVar(&c.Socket, "control", "", "control socket of a running modemsim (required)")
	return c
}

func needControl(c *modemsim.Client, stderr io.Writer) bool {
	if c.Socket == "" {
		fmt.Fprintln(stderr, "modemsim: -control SOCKET is required")
		return false
	}
	return true
}

func cmdSMS(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("sms", stderr)
	c := clientFlags(fs)
	var m modemsim.SMS
	fs.StringVar(&m.From, "from", "000", "sender")
	fs.StringVar(&m.Encoding, "encoding", "", "gsm7, ucs2 or 8bit (default: gsm7 when the text fits, else ucs2)")
	fs.IntVar(&m.Parts, "parts", 0, "split into this many concatenated segments")
	fs.BoolVar(&m.Ref16, "ref16", false, "16-bit concatenation reference")
	order := fs.String("order", "", "delivery order of segments, e.g. 3,1,2")
	fs.IntVar(&m.Copies, "copies", 0, "deliver this many identical copies at once (same timestamp)")
	fs.BoolVar(&m.Silent, "silent", false, "store without a +CMTI, as a module that lost the indication")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if !needControl(c, stderr) {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "modemsim sms: want exactly one TEXT argument")
		return exitUsage
	}
	text := fs.Arg(0)
	if m.Encoding == "8bit" {
		b, err := base64.StdEncoding.DecodeString(text)
		if err != nil {
			return fail(stderr, fmt.Errorf("8bit TEXT is not base64: %w", err))
		}
		m.Data = b
	} else {
		m.Text = text
	}
	if *order != "" {
		for _, f := range strings.Split(*order, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				return fail(stderr, fmt.Errorf("-order %q: %w", *order, err))
			}
			m.Order = append(m.Order, n)
		}
	}
	idx, err := c.InjectSMS(m)
	if err != nil {
		return fail(stderr, err)
	}
	if idx == nil {
		idx = []int{} // held by the network: stored later
	}
	return printJSON(stdout, stderr, map[string][]int{"indexes": idx})
}

func cmdUDP(args []string, stderr io.Writer) int {
	fs := newFlags("udp", stderr)
	c := clientFlags(fs)
	from := fs.String("from", "100.64.0.1:6969", "source ip:port")
	port := fs.Int("port", 0, "device port (required)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if !needControl(c, stderr) {
		return exitUsage
	}
	if fs.NArg() != 1 || *port <= 0 {
		fmt.Fprintln(stderr, "modemsim udp: want -port N and one PAYLOAD_BASE64 argument")
		return exitUsage
	}
	b, err := base64.StdEncoding.DecodeString(fs.Arg(0))
	if err != nil {
		return fail(stderr, fmt.Errorf("payload is not base64: %w", err))
	}
	if err := c.InjectUDP(*from, *port, b); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

func cmdState(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("state", stderr)
	c := clientFlags(fs)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if !needControl(c, stderr) {
		return exitUsage
	}
	st, err := c.State()
	if err != nil {
		return fail(stderr, err)
	}
	return printJSON(stdout, stderr, st)
}

func printJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

func cmdDuration(verb string, args []string, stderr io.Writer) int {
	fs := newFlags(verb, stderr)
	c := clientFlags(fs)
	d := fs.Duration("for", 3*time.Second, "how long")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if !needControl(c, stderr) {
		return exitUsage
	}
	var err error
	if verb == "unplug" {
		err = c.Unplug(*d)
	} else {
		err = c.Hang(*d)
	}
	if err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

func cmdGarbage(args []string, stderr io.Writer) int {
	fs := newFlags("garbage", stderr)
	c := clientFlags(fs)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if !needControl(c, stderr) {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "modemsim garbage: want one HEX argument")
		return exitUsage
	}
	b, err := hex.DecodeString(fs.Arg(0))
	if err != nil {
		return fail(stderr, fmt.Errorf("garbage is not hex: %w", err))
	}
	if err := c.Garbage(b); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

func cmdSimple(verb string, args []string, stderr io.Writer) int {
	fs := newFlags(verb, stderr)
	c := clientFlags(fs)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if !needControl(c, stderr) {
		return exitUsage
	}
	var err error
	if verb == "reset" {
		err = c.Reset()
	} else {
		err = c.DropData()
	}
	if err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

func cmdValue(op, flagName, help string, args []string, stderr io.Writer) int {
	fs := newFlags(op, stderr)
	c := clientFlags(fs)
	v := fs.Int(flagName, -1, help+" (required)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if !needControl(c, stderr) {
		return exitUsage
	}
	if *v < 0 {
		fmt.Fprintf(stderr, "modemsim %s: -%s is required\n", op, flagName)
		return exitUsage
	}
	if _, err := c.Do(modemsim.Request{Op: op, Value: *v}); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

func cmdFaults(args []string, stderr io.Writer) int {
	fs := newFlags("faults", stderr)
	c := clientFlags(fs)
	var f modemsim.Faults
	fs.BoolVar(&f.Chunked, "chunked", false, "split writes into random small chunks")
	fs.IntVar(&f.ChunkMax, "chunk-max", 0, "with -chunked, the largest chunk in bytes (0: 8)")
	fs.Func("error-on", "answer ERROR to this command instead of running it, e.g. AT+CMEE? (repeatable)", func(v string) error {
		if strings.TrimSpace(v) == "" {
			return errors.New("want a command such as AT+CMEE?")
		}
		f.ErrorOn = append(f.ErrorOn, v)
		return nil
	})
	fs.Float64Var(&f.URCNoise, "urc-noise", 0, "probability of a noise URC between reply lines (0..1)")
	fs.IntVar(&f.SendError, "send-error", 0, "make AT+CMGS fail with this +CMS ERROR code")
	fs.BoolVar(&f.SocketSendFail, "socket-send-fail", false, "make socket sends fail")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if !needControl(c, stderr) {
		return exitUsage
	}
	if err := c.SetFaults(f); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}
