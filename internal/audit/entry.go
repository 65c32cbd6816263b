// Package audit is Patchward's tamper-evident audit trail. Every mutation is
// appended, in the same transaction as the change it records, as a leaf of an
// RFC 6962 Merkle tree; each entry also carries the hash of its predecessor
// and the tree root after it, and signed checkpoints pin the root at a size.
// Verification recomputes all of it, so an entry altered, removed, inserted
// or reordered with direct database access is found.
package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/patchward/patchward/internal/errs"
)

// Actor is who or what made a change.
type Actor struct {
	Kind string `json:"kind"` // user, token, agent, system
	ID   string `json:"id,omitempty"`
	Name string `json:"name,omitempty"`
	// Addr is the remote address of the request, when there was one.
	Addr string `json:"addr,omitempty"`
}

// Actor kinds.
const (
	ActorUser   = "user"
	ActorToken  = "token"
	ActorAgent  = "agent"
	ActorSystem = "system"
)

// System is the actor for changes Patchward makes on its own (migrations,
// demo data, schedules).
var System = Actor{Kind: ActorSystem, Name: "patchward"}

// Record is what a domain service asks to have logged: one mutation.
type Record struct {
	Actor      Actor
	Action     string // e.g. "asset.update"
	ObjectType string // e.g. "asset"
	ObjectID   string
	// Before and After are the object's state around the change; nil for
	// creation and deletion respectively.
	Before any
	After  any
	Reason string
}

// Entry is one appended, hashed audit record.
type Entry struct {
	Seq        int64           `json:"seq"`
	At         time.Time       `json:"at"`
	Actor      Actor           `json:"actor"`
	Action     string          `json:"action"`
	ObjectType string          `json:"object_type"`
	ObjectID   string          `json:"object_id"`
	Before     json.RawMessage `json:"before,omitempty"`
	After      json.RawMessage `json:"after,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	PrevHash   []byte          `json:"prev_hash"`
	LeafHash   []byte          `json:"leaf_hash"`
	// RootHash is the Merkle root of the tree of size Seq+1.
	RootHash []byte `json:"root_hash"`
}

// leafData is the exact byte form that is hashed. Field order is fixed by the
// struct; times are Unix microseconds so every engine round-trips them.
type leafData struct {
	V          int             `json:"v"`
	Seq        int64           `json:"seq"`
	AtMicros   int64           `json:"at"`
	Actor      Actor           `json:"actor"`
	Action     string          `json:"action"`
	ObjectType string          `json:"object_type"`
	ObjectID   string          `json:"object_id"`
	Before     json.RawMessage `json:"before,omitempty"`
	After      json.RawMessage `json:"after,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	PrevHash   []byte          `json:"prev"`
}

// LeafBytes returns the canonical bytes of e that its leaf hash covers.
func (e *Entry) LeafBytes() ([]byte, error) {
	// A nil and an empty previous hash are the same "no predecessor": Next
	// always stores the empty form, but drivers and JSON decoders may hand
	// back either, and the hash must not depend on which.
	prev := e.PrevHash
	if prev == nil {
		prev = []byte{}
	}
	b, err := json.Marshal(leafData{V: 1, Seq: e.Seq, AtMicros: e.At.UnixMicro(), Actor: e.Actor,
		Action: e.Action, ObjectType: e.ObjectType, ObjectID: e.ObjectID, Before: e.Before,
		After: e.After, Reason: e.Reason, PrevHash: prev})
	if err != nil {
		return nil, fmt.Errorf("encode audit entry %d: %w", e.Seq, err)
	}
	return b, nil
}

// ComputeLeafHash returns the RFC 6962 leaf hash of e's canonical bytes.
func (e *Entry) ComputeLeafHash() ([]byte, error) {
	b, err := e.LeafBytes()
	if err != nil {
		return nil, err
	}
	return rfc6962.DefaultHasher.HashLeaf(b), nil
}

// Head is the state needed to append the next entry: the tree size, the
// compact range covering [0, Size) and the last leaf hash.
type Head struct {
	Size     int64
	Range    [][]byte
	LastLeaf []byte
}

var rangeFactory = compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// EmptyRoot is the RFC 6962 root of an empty tree.
var EmptyRoot = rfc6962.DefaultHasher.EmptyRoot()

// Root returns the Merkle root of the tree described by h.
func (h Head) Root() ([]byte, error) {
	if h.Size == 0 {
		return EmptyRoot, nil
	}
	r, err := rangeFactory.NewRange(0, uint64(h.Size), h.Range)
	if err != nil {
		return nil, fmt.Errorf("audit head: %w", err)
	}
	return r.GetRootHash(nil)
}

// Next builds the entry that appends rec at time at after head, and the new
// head. It is pure: the store persists both in the caller's transaction.
func Next(head Head, rec Record, at time.Time) (Entry, Head, error) {
	e := Entry{Seq: head.Size, At: at.UTC().Truncate(time.Microsecond), Actor: rec.Actor,
		Action: rec.Action, ObjectType: rec.ObjectType, ObjectID: rec.ObjectID, Reason: rec.Reason,
		PrevHash: head.LastLeaf}
	if e.PrevHash == nil {
		e.PrevHash = []byte{}
	}
	if rec.Action == "" || rec.ObjectType == "" || rec.Actor.Kind == "" {
		return Entry{}, Head{}, errs.E(errs.Internal, "audit record needs an action, object type and actor")
	}
	var err error
	if e.Before, err = canonicalJSON(rec.Before); err != nil {
		return Entry{}, Head{}, err
	}
	if e.After, err = canonicalJSON(rec.After); err != nil {
		return Entry{}, Head{}, err
	}
	if e.LeafHash, err = e.ComputeLeafHash(); err != nil {
		return Entry{}, Head{}, err
	}
	r, err := rangeFactory.NewRange(0, uint64(head.Size), head.Range)
	if err != nil {
		return Entry{}, Head{}, fmt.Errorf("audit head: %w", err)
	}
	if err := r.Append(e.LeafHash, nil); err != nil {
		return Entry{}, Head{}, fmt.Errorf("audit append: %w", err)
	}
	if e.RootHash, err = r.GetRootHash(nil); err != nil {
		return Entry{}, Head{}, fmt.Errorf("audit root: %w", err)
	}
	return e, Head{Size: head.Size + 1, Range: r.Hashes(), LastLeaf: e.LeafHash}, nil
}

// canonicalJSON encodes v compactly; a json.RawMessage is compacted as is.
func canonicalJSON(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	var b []byte
	switch x := v.(type) {
	case json.RawMessage:
		b = x
	case []byte:
		b = x
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("encode audit state: %w", err)
		}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, fmt.Errorf("compact audit state: %w", err)
	}
	return buf.Bytes(), nil
}

// Appender appends records inside the caller's transaction. Every domain
// transaction interface embeds it so a mutation cannot commit unlogged.
type Appender interface {
	AppendAudit(ctx context.Context, rec Record) error
}
