// Package replay is plaudhook's outbound HTTP client: it sends stored webhook
// events to a team's own app (replay and forwarding) and records each attempt.
//
// Every connection goes through a guarded dialer that checks the resolved IP
// address against a Policy at connect time, on every dial, so a hostname that
// first resolves to a public address and later to a private one (DNS
// rebinding) cannot slip through. Cloud metadata, link-local, unspecified,
// multicast and broadcast addresses are always refused; loopback and private
// ranges are allowed by default, because replays exist to reach the team's
// own apps, and can be refused with PolicyPublicOnly.
//
// The package uses only the standard library and imports nothing else from
// this module.
package replay
