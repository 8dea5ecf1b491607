// Package plaud reads raw Plaud webhook bodies into normalised facts: the envelope
// (event type, ids, time, title) and, when the event carries one, the transcript with its
// segments in integer milliseconds.
//
// Plaud documents two webhook schemes whose envelopes and payloads do not match, and third
// parties report further variants (see PLAUD.md §3). The parser is therefore lenient: it
// accepts every known spelling of a field, reports what it could not read instead of
// failing, and never panics, whatever the bytes. It works on the exact bytes received and
// keeps no state.
//
// The package imports only the standard library and nothing else from plaudhook, so the
// ingest handler, the replay path and the views can all share it.
package plaud
