// Command interop writes and reads GoDev Kit events with segmentio/kafka-go, the Go kit's
// Kafka library, so that tests can check Rust and Go services share topics.
//
//	interop write -brokers 127.0.0.1:9092 -topic t -type user.created -user 1 -email a@example.com
//	interop read  -brokers 127.0.0.1:9092 -topic t -n 3 -timeout 30s
//	interop group 127.0.0.1:9092 t g handled.txt 120
//
// write sends one entity.UserEvent (the kit's struct and JSON tags), keyed by the decimal user
// id as the kit does, and prints the JSON it wrote. read reads n messages from every partition
// of the topic (no consumer group) and prints each decoded into the kit's struct, re-encoded
// as one JSON line.
//
// group is a member of a consumer group (the classic protocol, kafka-go's default range and
// round-robin balancers) with the client id kafka-go-interop: it reads the topic until the
// given number of seconds passed or SIGTERM (or SIGINT) arrives, appends "partition offset"
// to the out-file for each message, then commits that message synchronously. It then closes
// the reader, which leaves the group, and prints "handled N commit-errors K".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
)

// UserEvent is the Go kit's entity.UserEvent.
type UserEvent struct {
	ID        int64       `json:"id"`
	EventType string      `json:"event_type"`
	UserID    int64       `json:"user_id"`
	Email     string      `json:"email"`
	Data      interface{} `json:"data"`
	Timestamp time.Time   `json:"timestamp"`
}

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: interop write|read [flags], or interop group <brokers> <topic> <group> <out-file> <seconds>"))
	}
	var err error
	switch os.Args[1] {
	case "write":
		err = write(os.Args[2:])
	case "read":
		err = read(os.Args[2:])
	case "group":
		err = group(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q: expected write, read or group", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "interop:", err)
	os.Exit(1)
}

func write(args []string) error {
	fs := flag.NewFlagSet("write", flag.ExitOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "bootstrap broker")
	topic := fs.String("topic", "", "topic")
	eventType := fs.String("type", "user.created", "event_type")
	userID := fs.Int64("user", 1, "user_id")
	email := fs.String("email", "user@example.com", "email")
	data := fs.String("data", "", "data as a JSON object (empty: null)")
	timeout := fs.Duration("timeout", 30*time.Second, "deadline")
	_ = fs.Parse(args)
	if *topic == "" {
		return errors.New("write: -topic is required")
	}
	event := UserEvent{
		ID:        time.Now().UnixNano(),
		EventType: *eventType,
		UserID:    *userID,
		Email:     *email,
		Timestamp: time.Now(),
	}
	if *data != "" {
		if err := json.Unmarshal([]byte(*data), &event.Data); err != nil {
			return fmt.Errorf("write: -data: %w", err)
		}
	}
	value, err := json.Marshal(event)
	if err != nil {
		return err
	}
	writer := &kafka.Writer{
		Addr:                   kafka.TCP(*brokers),
		Topic:                  *topic,
		Balancer:               &kafka.Murmur2Balancer{}, // the Java client's partitioner, as the Rust producer
		RequiredAcks:           kafka.RequireAll,
		AllowAutoTopicCreation: true,
	}
	defer writer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	key := []byte(strconv.FormatInt(event.UserID, 10))
	if err := writer.WriteMessages(ctx, kafka.Message{Key: key, Value: value}); err != nil {
		return fmt.Errorf("write to %s: %w", *topic, err)
	}
	fmt.Println(string(value))
	return nil
}

func read(args []string) error {
	fs := flag.NewFlagSet("read", flag.ExitOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "bootstrap broker")
	topic := fs.String("topic", "", "topic")
	n := fs.Int("n", 1, "messages to read, over all partitions")
	timeout := fs.Duration("timeout", 30*time.Second, "deadline")
	_ = fs.Parse(args)
	if *topic == "" {
		return errors.New("read: -topic is required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", *brokers)
	if err != nil {
		return fmt.Errorf("dial %s: %w", *brokers, err)
	}
	partitions, err := conn.ReadPartitions(*topic)
	conn.Close()
	if err != nil {
		return fmt.Errorf("partitions of %s: %w", *topic, err)
	}

	lines := make(chan string)
	errs := make(chan error, len(partitions))
	var wg sync.WaitGroup
	for _, p := range partitions {
		wg.Add(1)
		go func(partition int) {
			defer wg.Done()
			reader := kafka.NewReader(kafka.ReaderConfig{
				Brokers:   []string{*brokers},
				Topic:     *topic,
				Partition: partition,
				MaxWait:   200 * time.Millisecond,
			})
			defer reader.Close()
			for {
				msg, err := reader.ReadMessage(ctx)
				if err != nil {
					if ctx.Err() == nil {
						errs <- fmt.Errorf("read %s[%d]: %w", *topic, partition, err)
					}
					return
				}
				var event UserEvent
				if err := json.Unmarshal(msg.Value, &event); err != nil {
					errs <- fmt.Errorf("decode %s[%d]@%d: %w", *topic, partition, msg.Offset, err)
					return
				}
				out, _ := json.Marshal(struct {
					Key       string    `json:"key"`
					Partition int       `json:"partition"`
					Offset    int64     `json:"offset"`
					Event     UserEvent `json:"event"`
				}{string(msg.Key), msg.Partition, msg.Offset, event})
				select {
				case lines <- string(out):
				case <-ctx.Done():
					return
				}
			}
		}(p.ID)
	}
	for got := 0; got < *n; {
		select {
		case line := <-lines:
			fmt.Println(line)
			got++
		case err := <-errs:
			return err
		case <-ctx.Done():
			return fmt.Errorf("read %s: %d of %d messages before the deadline", *topic, got, *n)
		}
	}
	cancel()
	wg.Wait()
	return nil
}

// groupClientID is the client id of the group member, as Kafka's tools show it.
const groupClientID = "kafka-go-interop"

func group(args []string) error {
	if len(args) != 5 {
		return errors.New("usage: interop group <brokers> <topic> <group> <out-file> <seconds>")
	}
	brokers, topic, groupID, outPath := args[0], args[1], args[2], args[3]
	seconds, err := strconv.Atoi(args[4])
	if err != nil || seconds <= 0 {
		return fmt.Errorf("group: <seconds> must be a positive integer, not %q", args[4])
	}
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("group: open %s: %w", outPath, err)
	}
	defer out.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds)*time.Second)
	defer cancel()

	reader := kafka.NewReader(kafka.ReaderConfig{
		Brokers: strings.Split(brokers, ","),
		Topic:   topic,
		GroupID: groupID,
		Dialer: &kafka.Dialer{
			ClientID:  groupClientID,
			Timeout:   10 * time.Second,
			DualStack: true,
		},
		// Zero: CommitMessages commits synchronously.
		CommitInterval:    0,
		StartOffset:       kafka.FirstOffset,
		SessionTimeout:    6 * time.Second,
		HeartbeatInterval: time.Second,
		RebalanceTimeout:  10 * time.Second,
		JoinGroupBackoff:  500 * time.Millisecond,
		MaxWait:           500 * time.Millisecond,
	})
	handled, commitErrors := 0, 0
	var readErr error
	for {
		msg, err := reader.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() == nil {
				readErr = fmt.Errorf("group: read %s: %w", topic, err)
			}
			break
		}
		// An unbuffered file: each line is written (and visible to readers) at once.
		if _, err := fmt.Fprintf(out, "%d %d\n", msg.Partition, msg.Offset); err != nil {
			readErr = fmt.Errorf("group: write %s: %w", outPath, err)
			break
		}
		handled++
		// Its own deadline, so that SIGTERM does not cut short the commit of a handled message.
		commitCtx, commitCancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := reader.CommitMessages(commitCtx, msg); err != nil {
			commitErrors++
			fmt.Fprintf(os.Stderr, "interop: commit %s[%d]@%d: %v\n", topic, msg.Partition, msg.Offset, err)
		}
		commitCancel()
	}
	// Close leaves the group.
	if err := reader.Close(); err != nil && readErr == nil {
		readErr = fmt.Errorf("group: close the reader: %w", err)
	}
	fmt.Printf("handled %d commit-errors %d\n", handled, commitErrors)
	return readErr
}
