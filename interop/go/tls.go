// The tls scenario: amqps with the server's certificate verified against the CA; PLAIN
// without a client certificate, then EXTERNAL with one (CN=guest). It needs the
// WARREN_INTEROP_TLS_* variables that interop/run.sh sets; n/a without them.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func tlsConfig(withClientCert bool) (*tls.Config, error) {
	pem, err := os.ReadFile(os.Getenv("WARREN_INTEROP_TLS_CA"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no CA certificate in WARREN_INTEROP_TLS_CA")
	}
	cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
	if withClientCert {
		cert, err := tls.LoadX509KeyPair(os.Getenv("WARREN_INTEROP_TLS_CERT"), os.Getenv("WARREN_INTEROP_TLS_KEY"))
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func (e *env) dialTLS(cfg amqp.Config) (*amqp.Connection, error) {
	cfg.Locale = "en_US"
	conn, err := amqp.DialConfig(os.Getenv("WARREN_INTEROP_TLS_URL"), cfg)
	if err == nil {
		e.mu.Lock()
		e.conns = append(e.conns, conn)
		e.mu.Unlock()
	}
	return conn, err
}

func stls(e *env) error {
	q := prefix + "tls"
	plainCfg, err := tlsConfig(false)
	if err != nil {
		return err
	}
	conn, err := e.dialTLS(amqp.Config{
		TLSClientConfig: plainCfg,
		SASL:            []amqp.Authentication{&amqp.PlainAuth{Username: "guest", Password: "guest"}},
	})
	if err != nil {
		return fmt.Errorf("amqps with PLAIN: %w", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
		return err
	}
	if err := publish(ch, "", q, false, text("over TLS")); err != nil {
		return err
	}
	if err := conn.Close(); err != nil {
		return err
	}

	externalCfg, err := tlsConfig(true)
	if err != nil {
		return err
	}
	conn, err = e.dialTLS(amqp.Config{
		TLSClientConfig: externalCfg,
		SASL:            []amqp.Authentication{&amqp.ExternalAuth{}},
	})
	if err != nil {
		return fmt.Errorf("amqps with EXTERNAL: %w", err)
	}
	ch, err = conn.Channel()
	if err != nil {
		return err
	}
	var got amqp.Delivery
	ok := false
	for i := 0; i < 100 && !ok; i++ {
		if got, ok, err = ch.Get(q, true); err != nil {
			return err
		}
		if !ok {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := check(ok && string(got.Body) == "over TLS", "got %q (%v) over EXTERNAL", got.Body, ok); err != nil {
		return err
	}
	if _, err := ch.QueueDelete(q, false, false, false); err != nil {
		return err
	}
	return conn.Close()
}
