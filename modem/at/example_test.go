package at_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/simgate/simgate/modem/at"
)

// fakeModem answers each command line written to it with its entry in
// replies (ERROR when it has none), as a module on the other end of a
// serial line would.
func fakeModem(replies map[string]string) io.ReadWriteCloser {
	host, dev := net.Pipe()
	go func() {
		r := bufio.NewReader(dev)
		for {
			line, err := r.ReadString('\r')
			if err != nil {
				return // the host closed the port
			}
			reply, ok := replies[strings.TrimSuffix(line, "\r")]
			if !ok {
				reply = "\r\nERROR\r\n"
			}
			if _, err := io.WriteString(dev, reply); err != nil {
				return
			}
		}
	}()
	return host
}

// engineOn starts an engine on a fakeModem; stop shuts both down.
func engineOn(replies map[string]string, cfg at.Config) (eng *at.Engine, stop func()) {
	port := fakeModem(replies)
	eng = at.New(port, cfg)
	return eng, func() {
		eng.Closing()
		port.Close()
		eng.Close()
	}
}

// One engine owns the port; commands wait for their reply. Whoever opened
// the port closes it: Closing, the port's Close, then the engine's.
func Example() {
	port := fakeModem(map[string]string{
		"AT+CSQ": "\r\n+CSQ: 17,99\r\n\r\nOK\r\n",
	})
	eng := at.New(port, at.Config{})
	defer func() {
		eng.Closing()
		port.Close()
		eng.Close()
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lines, err := eng.Command(ctx, "AT+CSQ")
	if err != nil {
		fmt.Println("AT+CSQ:", err)
		return
	}
	fmt.Println(lines)
	// Output: [+CSQ: 17,99]
}

// A URC that arrives in the middle of a reply is not part of it. With
// PullURCs it is waiting by the time Do returns.
func ExampleEngine_Do() {
	const pdu = "07914477790706520412000000000000000000000000"
	eng, stop := engineOn(map[string]string{
		"AT+CMGR=5": "\r\n+CMGR: 0,,24\r\n\r\n+CMTI: \"SM\",6\r\n" + pdu + "\r\n\r\nOK\r\n",
	}, at.Config{PullURCs: true})
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The header +CMGR: is followed by one line, the PDU.
	r, err := eng.Do(ctx, at.Cmd{Line: "AT+CMGR=5", Trailing: 1})
	if err != nil {
		fmt.Println("AT+CMGR=5:", err)
		return
	}
	fmt.Printf("reply %q, final %s\n", r.Lines, r.Final)
	for u, ok := eng.NextURC(); ok; u, ok = eng.NextURC() {
		fmt.Printf("URC %s\n", u.Line)
	}
	// Output:
	// reply ["+CMGR: 0,,24" "07914477790706520412000000000000000000000000"], final OK
	// URC +CMTI: "SM",6
}

// Error final results are typed, with the code's meaning from 27.005 and
// 27.007.
func ExampleCMSError() {
	eng, stop := engineOn(map[string]string{
		"AT+CMGR=9": "\r\n+CMS ERROR: 321\r\n",
	}, at.Config{})
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := eng.Command(ctx, "AT+CMGR=9")
	var cms *at.CMSError
	if errors.As(err, &cms) {
		fmt.Println(cms.Code, cms.Reason())
	}
	fmt.Println(&at.OpError{Op: "read +CMGR=9", Err: err})
	// Output:
	// 321 invalid memory index
	// read +CMGR=9: +CMS ERROR: 321 (invalid memory index)
}

// A framer reads the bytes an information line announces exactly, line
// ends and all: here Quectel's AT+QIRD.
func ExampleLineFramer() {
	eng, stop := engineOn(map[string]string{
		"AT+QIRD=0,1500": "\r\n+QIRD: 6,\"100.64.0.1\",6969\r\nhi\r\nOK\r\n\r\nOK\r\n",
	}, at.Config{})
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := eng.Do(ctx, at.Cmd{Line: "AT+QIRD=0,1500", Framer: at.QuectelRead})
	if err != nil {
		fmt.Println("AT+QIRD:", err)
		return
	}
	for _, p := range r.Payloads {
		fmt.Printf("%s: %q\n", p.Head, p.Data)
	}
	// Output: +QIRD: 6,"100.64.0.1",6969: "hi\r\nOK"
}

func ExampleSplitFields() {
	rest, _ := strings.CutPrefix(`+CMGL: 1,"REC UNREAD",,24`, "+CMGL:")
	for i, f := range at.SplitFields(rest) {
		fmt.Printf("%d %q\n", i, f)
	}
	// Output:
	// 0 "1"
	// 1 "\"REC UNREAD\""
	// 2 ""
	// 3 "24"
}
