// lumber-send: a Beats (Lumberjack v2) sender for evtship's tests, on elastic/go-lumber's
// client, which behaves as Beats do: events go in windows, compressed, and a window that is not
// ACKed within the timeout (or whose connection breaks) is sent again on a new connection.
//
// It reads JSON lines from -file and prints, at the end, one JSON object: windows sent, windows
// ACKed, windows sent again, events, and the keep-alives seen are not counted (go-lumber reads
// them as progress).
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	v2 "github.com/elastic/go-lumber/client/v2"
)

type result struct {
	Windows  int    `json:"windows"`
	Acked    int    `json:"acked"`
	Resent   int    `json:"resent"`
	Events   int    `json:"events"`
	Failures int    `json:"connection_failures"`
	LastErr  string `json:"last_error,omitempty"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:5044", "evtship's beats listener")
	file := flag.String("file", "", "JSON lines to send")
	window := flag.Int("window", 1000, "events per window")
	timeout := flag.Duration("timeout", 30*time.Second, "ACK timeout (Beats' default is 30 s)")
	compress := flag.Int("compress", 3, "zlib level (Beats' default is 3; 0: none)")
	giveUp := flag.Duration("give-up", 10*time.Minute, "stop retrying after this long")
	ca := flag.String("tls-ca", "", "CA of the server's certificate (TLS when set)")
	cert := flag.String("tls-cert", "", "client certificate (PEM)")
	key := flag.String("tls-key", "", "client key (PEM)")
	once := flag.Bool("once", false, "do not reconnect: exit 1 at the first failure")
	flag.Parse()

	events, err := readEvents(*file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	dial := func(network, address string) (net.Conn, error) {
		d := &net.Dialer{Timeout: 5 * time.Second}
		if *ca == "" {
			return d.Dial(network, address)
		}
		conf, err := tlsConfig(*ca, *cert, *key)
		if err != nil {
			return nil, err
		}
		return tls.DialWithDialer(d, network, address, conf)
	}
	res := result{}
	deadline := time.Now().Add(*giveUp)
	var client *v2.SyncClient
	for start := 0; start < len(events); {
		end := start + *window
		if end > len(events) {
			end = len(events)
		}
		batch := events[start:end]
		if client == nil {
			client, err = v2.SyncDialWith(dial, *addr, v2.Timeout(*timeout), v2.CompressionLevel(*compress))
			if err != nil {
				res.Failures++
				res.LastErr = err.Error()
				if *once || time.Now().After(deadline) {
					finish(res, 1)
				}
				time.Sleep(500 * time.Millisecond)
				continue
			}
		}
		res.Windows++
		n, err := client.Send(batch)
		if err != nil || n != len(batch) {
			// Not (wholly) ACKed: a new connection, and the whole window again, as Beats do.
			res.Failures++
			if err != nil {
				res.LastErr = err.Error()
			}
			client.Close()
			client = nil
			if *once || time.Now().After(deadline) {
				finish(res, 1)
			}
			res.Resent++
			time.Sleep(200 * time.Millisecond)
			continue
		}
		res.Acked++
		res.Events += len(batch)
		start = end
	}
	if client != nil {
		client.Close()
	}
	finish(res, 0)
}

func finish(res result, code int) {
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	os.Exit(code)
}

func readEvents(path string) ([]interface{}, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var events []interface{}
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 64<<20)
	for s.Scan() {
		line := s.Bytes()
		if len(line) == 0 {
			continue
		}
		var v map[string]interface{}
		if err := json.Unmarshal(line, &v); err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		events = append(events, v)
	}
	return events, s.Err()
}

func tlsConfig(ca, cert, key string) (*tls.Config, error) {
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	conf := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, err
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	return conf, nil
}
