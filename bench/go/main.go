// The segmentio/kafka-go peer (the library of the Go kit this project ports): a Writer with
// the framework's batching (BatchSize 500, BatchTimeout 5 ms, acks = 1, murmur2 balancer as
// the Java client), one WriteMessages call per event with 4096 calls in flight (the Rust
// peer's window); a Reader with a GroupID (CommitInterval 500 ms, MaxWait 100 ms, 1 MiB fetches)
// that decodes every event's JSON and dispatches on its type.
//
//	bench-kafka-go produce brokers=H:P topic=T n=200000
//	bench-kafka-go consume brokers=H:P topic=T group=G n=200000
//	bench-kafka-go latency brokers=H:P topic=T group=G rate=5000 secs=20
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

const valueBytes = 1024
const seqBase = 1_000_000

// event is the CloudEvents 1.0 JSON shape of the framework's default codec, so every
// consumer reads every producer's records.
type event struct {
	SpecVersion     string `json:"specversion"`
	ID              string `json:"id"`
	Source          string `json:"source"`
	EventType       string `json:"type"`
	Time            string `json:"time"`
	DataContentType string `json:"datacontenttype"`
	Data            data   `json:"data"`
}

type data struct {
	Key    uint32 `json:"key"`
	Seq    uint64 `json:"seq"`
	SentNs uint64 `json:"sent_ns"`
	Body   string `json:"body"`
}

func newEvent(seq uint64, body string) event {
	now := time.Now()
	return event{SpecVersion: "1.0", ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", seq), Source: "bench",
		EventType: "bench.event", Time: now.UTC().Format("2006-01-02T15:04:05.000000000Z"), DataContentType: "application/json",
		Data: data{Key: uint32(seq % 1000), Seq: seq, SentNs: uint64(now.UnixNano()), Body: body}}
}

func padding() string {
	probe, _ := json.Marshal(newEvent(seqBase, ""))
	return strings.Repeat("x", valueBytes-len(probe))
}

func message(seq uint64, body string) kafka.Message {
	e := newEvent(seq, body)
	value, err := json.Marshal(e)
	if err != nil {
		panic(err)
	}
	return kafka.Message{Key: []byte(strconv.Itoa(int(e.Data.Key))), Value: value}
}

func writer(args map[string]string) *kafka.Writer {
	return &kafka.Writer{
		Addr:         kafka.TCP(strings.Split(args["brokers"], ",")...),
		Topic:        args["topic"],
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireOne,
		BatchSize:    500,
		BatchTimeout: 5 * time.Millisecond,
		BatchBytes:   1 << 20,
	}
}

func reader(args map[string]string) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:        strings.Split(args["brokers"], ","),
		Topic:          args["topic"],
		GroupID:        args["group"],
		StartOffset:    kafka.FirstOffset,
		MinBytes:       1,
		MaxBytes:       1 << 20,
		MaxWait:        100 * time.Millisecond,
		CommitInterval: 500 * time.Millisecond,
	})
}

// consumeLoop reads, decodes and dispatches on the event type until each returns false.
func consumeLoop(r *kafka.Reader, each func(event) bool) {
	for {
		m, err := r.ReadMessage(context.Background())
		if err != nil {
			panic(err)
		}
		var e event
		if err := json.Unmarshal(m.Value, &e); err != nil {
			panic(err)
		}
		switch e.EventType {
		case "bench.event":
			if !each(e) {
				return
			}
		}
	}
}

func num(args map[string]string, key string, def uint64) uint64 {
	if v, ok := args[key]; ok {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			panic(err)
		}
		return n
	}
	return def
}

func emit(fields map[string]any) {
	b, _ := json.Marshal(fields)
	fmt.Printf("RESULT %s\n", b)
}

func main() {
	args := map[string]string{}
	for _, a := range os.Args[2:] {
		if k, v, ok := strings.Cut(a, "="); ok {
			args[k] = v
		}
	}
	body := padding()
	switch os.Args[1] {
	case "produce":
		n := num(args, "n", 200000)
		w := writer(args)
		sem := make(chan struct{}, 4096)
		var wg sync.WaitGroup
		var failed atomic.Int64
		started := time.Now()
		for seq := uint64(seqBase); seq < seqBase+n; seq++ {
			sem <- struct{}{}
			wg.Add(1)
			go func(seq uint64) {
				defer func() { <-sem; wg.Done() }()
				if err := w.WriteMessages(context.Background(), message(seq, body)); err != nil {
					failed.Add(1)
				}
			}(seq)
		}
		wg.Wait()
		secs := time.Since(started).Seconds()
		w.Close()
		if failed.Load() > 0 {
			panic(fmt.Sprintf("%d sends failed", failed.Load()))
		}
		emit(map[string]any{"mode": "produce", "n": n, "secs": secs, "value_bytes": len(message(seqBase, body).Value)})
	case "consume":
		n := num(args, "n", 200000)
		started := time.Now()
		r := reader(args)
		var first time.Time
		seen := uint64(0)
		consumeLoop(r, func(event) bool {
			if seen == 0 {
				first = time.Now()
			}
			seen++
			return seen < n
		})
		last := time.Now()
		emit(map[string]any{"mode": "consume", "n": n, "secs": last.Sub(first).Seconds(), "secs_with_join": last.Sub(started).Seconds()})
		r.Close()
	case "latency":
		rate := num(args, "rate", 5000)
		warmup := time.Duration(num(args, "warmup", 5)) * time.Second
		measure := time.Duration(num(args, "secs", 20)) * time.Second
		type sample struct{ seq, us uint64 }
		var mu sync.Mutex
		var samples []sample
		var handled atomic.Uint64
		r := reader(args)
		go consumeLoop(r, func(e event) bool {
			us := (uint64(time.Now().UnixNano()) - e.Data.SentNs) / 1000
			mu.Lock()
			samples = append(samples, sample{e.Data.Seq, us})
			mu.Unlock()
			handled.Add(1)
			return true
		})
		w := writer(args)
		started := time.Now()
		seq := uint64(seqBase)
		var firstSeen, measureAt time.Time
		var from uint64
		for {
			now := time.Now()
			if firstSeen.IsZero() && handled.Load() > 0 {
				firstSeen = now
			}
			if from == 0 && now.Sub(started) >= warmup && !firstSeen.IsZero() && now.Sub(firstSeen) >= 2*time.Second {
				from, measureAt = seq, now
			}
			if from != 0 && now.Sub(measureAt) >= measure {
				break
			}
			target := seqBase + uint64(now.Sub(started).Seconds()*float64(rate))
			for ; seq < target; seq++ {
				m := message(seq, body)
				go func() {
					if err := w.WriteMessages(context.Background(), m); err != nil {
						panic(err)
					}
				}()
			}
			time.Sleep(500 * time.Microsecond)
		}
		deadline := time.Now().Add(60 * time.Second)
		for handled.Load() < seq-seqBase && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		mu.Lock()
		var v []uint64
		for _, s := range samples {
			if s.seq >= from {
				v = append(v, s.us)
			}
		}
		mu.Unlock()
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		at := func(p float64) uint64 {
			if len(v) == 0 {
				return 0
			}
			return v[int(float64(len(v)-1)*p+0.5)]
		}
		var max uint64
		if len(v) > 0 {
			max = v[len(v)-1]
		}
		emit(map[string]any{"mode": "latency", "samples": len(v), "sent": seq - from, "p50_us": at(0.5), "p99_us": at(0.99), "p999_us": at(0.999), "max_us": max})
	default:
		panic("unknown mode " + os.Args[1])
	}
}
