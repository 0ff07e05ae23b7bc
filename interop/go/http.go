// Scenario 18: the management HTTP API as Go programs call it without a client library
// (rabbit-hole is not packaged for the offline build): net/http with basic auth and
// encoding/json. Declare a queue (PUT), see it listed with its arguments, publish
// through AMQP, watch the count reach 3, get the messages back through the API, find
// a connection by its client-provided name and close it with DELETE and X-Reason, as
// amqp091-go's own tests do, and see NotifyClose report 320 with that reason.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

type api struct {
	base   string
	client *http.Client
}

// call sends one request as guest/guest; out (when not nil) receives the JSON body.
func (a api) call(method, path string, body interface{}, header map[string]string, out interface{}) (int, error) {
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, a.base+path, reader)
	if err != nil {
		return 0, err
	}
	req.SetBasicAuth("guest", "guest")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %v in %q", method, path, err, data)
		}
	}
	return resp.StatusCode, nil
}

func s18(e *env) error {
	a := api{strings.TrimRight(os.Getenv("WARREN_INTEROP_HTTP_URL"), "/"), &http.Client{Timeout: 10 * time.Second}}
	q := prefix + "18." + runID
	qpath := "/api/queues/%2F/" + neturl.PathEscape(q)
	status, err := a.call("PUT", qpath, map[string]interface{}{
		"durable": false, "auto_delete": false, "arguments": map[string]interface{}{"x-max-length": 10},
	}, nil, nil)
	if err != nil {
		return err
	}
	if status != 201 && status != 204 {
		return fmt.Errorf("PUT queue: %d", status)
	}
	defer a.call("DELETE", qpath, nil, nil, nil)

	var queues []map[string]interface{}
	if _, err := a.call("GET", "/api/queues/%2F?columns=name,arguments", nil, nil, &queues); err != nil {
		return err
	}
	listed := false
	for _, x := range queues {
		if x["name"] == q {
			args, _ := x["arguments"].(map[string]interface{})
			listed = args["x-max-length"] == float64(10)
		}
	}
	if !listed {
		return fmt.Errorf("queue %s not listed with its arguments", q)
	}

	conn, err := e.connect()
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := ch.Confirm(false); err != nil {
		return err
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 3))
	for i := 0; i < 3; i++ {
		if err := publish(ch, "", q, false, text(fmt.Sprintf("m%d", i))); err != nil {
			return err
		}
	}
	for i := 0; i < 3; i++ {
		if c := <-confirms; !c.Ack {
			return fmt.Errorf("publish %d nacked", i)
		}
	}
	// The count is a statistic: RabbitMQ refreshes it every 5 s.
	var messages interface{}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		var queue map[string]interface{}
		if _, err := a.call("GET", qpath, nil, nil, &queue); err != nil {
			return err
		}
		if messages = queue["messages"]; messages == float64(3) {
			break
		}
	}
	if messages != float64(3) {
		return fmt.Errorf("the API counts %v messages, not 3", messages)
	}

	var got []map[string]interface{}
	status, err = a.call("POST", qpath+"/get", map[string]interface{}{
		"count": 3, "ackmode": "ack_requeue_false", "encoding": "auto",
	}, nil, &got)
	if err != nil || status != 200 {
		return fmt.Errorf("POST get: %d %v", status, err)
	}
	payloads := []string{}
	for _, m := range got {
		payloads = append(payloads, fmt.Sprintf("%v/%v", m["payload"], m["payload_encoding"]))
	}
	if strings.Join(payloads, " ") != "m0/string m1/string m2/string" {
		return fmt.Errorf("got %v", payloads)
	}

	name := prefix + "18-victim." + runID
	victim, err := e.dial(amqp.Config{Properties: amqp.Table{"connection_name": name}})
	if err != nil {
		return err
	}
	closed := victim.NotifyClose(make(chan *amqp.Error, 1))
	found := ""
	for deadline := time.Now().Add(15 * time.Second); found == "" && time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		var conns []map[string]interface{}
		if _, err := a.call("GET", "/api/connections", nil, nil, &conns); err != nil {
			return err
		}
		for _, c := range conns {
			if props, ok := c["client_properties"].(map[string]interface{}); ok && props["connection_name"] == name {
				found, _ = c["name"].(string)
			}
		}
	}
	if found == "" {
		return fmt.Errorf("connection %s not listed", name)
	}
	status, err = a.call("DELETE", "/api/connections/"+neturl.PathEscape(found), nil,
		map[string]string{"X-Reason": "closed by interop 18"}, nil)
	if err != nil || status != 204 {
		return fmt.Errorf("DELETE connection: %d %v", status, err)
	}
	select {
	case reason := <-closed:
		if reason == nil {
			return errors.New("closed without a reason")
		}
		return check(reason.Code == 320 && reason.Reason == "CONNECTION_FORCED - closed by interop 18",
			"closed with %d %q", reason.Code, reason.Reason)
	case <-time.After(10 * time.Second):
		return errors.New("amqp091-go saw no close")
	}
}
