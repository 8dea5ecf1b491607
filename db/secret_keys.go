package db

import (
	"context"
	"fmt"
)

// Secrets outside the request path: environment secrets mirrored for the UI, and master-key
// maintenance (re-sealing after a rotation, the key ids in use).

// SyncEnvironmentSecrets makes the environment secrets of an endpoint match the configuration:
// a row per configured secret (found by fingerprint, so its match count survives restarts), and
// none for secrets no longer configured. It returns the rows in the order given.
func (db *DB) SyncEnvironmentSecrets(ctx context.Context, endpointID int64, env []EnvSecret) ([]Secret, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sync environment secrets: %w", unavailable(err))
	}
	defer tx.Rollback()

	// Existing rows by fingerprint.
	rows, err := tx.QueryContext(ctx, `SELECT `+secretColumns+` FROM secrets
		WHERE endpoint_id = ? AND source = 'environment'`, endpointID)
	if err != nil {
		return nil, fmt.Errorf("sync environment secrets: %w", unavailable(err))
	}
	have := map[string]Secret{}
	for rows.Next() {
		s, err := scanSecret(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("sync environment secrets: %w", err)
		}
		have[s.Fingerprint] = s
	}
	rows.Close()

	// Drop the rows no longer configured, and move relabelled ones out of the way first: two
	// secrets may swap labels, which are unique.
	now := db.now().UTC()
	keep := map[string]bool{}
	for _, e := range env {
		keep[e.Fingerprint] = true
	}
	for fp, s := range have {
		q, args := `UPDATE secrets SET label = ? WHERE id = ?`, []any{"\x00relabel " + fp, s.ID}
		if !keep[fp] {
			q, args = `DELETE FROM secrets WHERE id = ?`, []any{s.ID}
			delete(have, fp)
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return nil, fmt.Errorf("sync environment secrets: %w", unavailable(err))
		}
	}

	// Keep or add one row per configured secret.
	out := make([]Secret, 0, len(env))
	seen := map[string]bool{}
	for _, e := range env {
		if seen[e.Fingerprint] { // the same value configured twice is one secret
			continue
		}
		seen[e.Fingerprint] = true
		s, ok := have[e.Fingerprint]
		if ok {
			_, err = tx.ExecContext(ctx, `UPDATE secrets SET label = ? WHERE id = ?`, e.Label, s.ID)
			s.Label = e.Label
		}
		if !ok {
			s = Secret{EndpointID: endpointID, Label: e.Label, Fingerprint: e.Fingerprint,
				Source: SourceEnvironment, State: SecretActive, CreatedAt: now, CreatedBy: "environment"}
			err = tx.QueryRowContext(ctx, `
				INSERT INTO secrets (endpoint_id, label, fingerprint, source, state, created_at,
					created_by)
				VALUES (?, ?, ?, 'environment', 'active', ?, 'environment')
				RETURNING id`, endpointID, e.Label, e.Fingerprint, micros(now)).Scan(&s.ID)
		}
		if err != nil {
			return nil, fmt.Errorf("sync environment secret %s: %w", e.Label, unavailable(conflict(err)))
		}
		out = append(out, s)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sync environment secrets: %w", unavailable(err))
	}
	db.secretsChanged()
	return out, nil
}

// ResealSecrets re-encrypts every stored secret that is not sealed under the sealer's current key
// (after a master-key rotation) and returns how many it changed. It returns an error wrapping
// the sealer's error when a value does not open: nothing is changed then.
func (db *DB) ResealSecrets(ctx context.Context) (int, error) {
	if db.opt.Sealer == nil {
		return 0, fmt.Errorf("reseal secrets: %w", errNoSealer)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("reseal secrets: %w", unavailable(err))
	}
	defer tx.Rollback()

	current := db.opt.Sealer.KeyID()
	rows, err := tx.QueryContext(ctx, `SELECT id, key_id, ciphertext FROM secrets
		WHERE source = 'stored' AND key_id != ?`, current)
	if err != nil {
		return 0, fmt.Errorf("reseal secrets: %w", unavailable(err))
	}
	type row struct {
		id     int64
		keyID  string
		sealed []byte
	}
	var todo []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.keyID, &r.sealed); err != nil {
			rows.Close()
			return 0, fmt.Errorf("reseal secrets: %w", err)
		}
		todo = append(todo, r)
	}
	rows.Close()

	for _, r := range todo {
		value, err := db.opt.Sealer.Open(r.keyID, r.sealed, secretAAD(r.id))
		if err != nil {
			return 0, fmt.Errorf("reseal secret %d: %w", r.id, err)
		}
		keyID, sealed, err := db.opt.Sealer.Seal(value, secretAAD(r.id))
		if err != nil {
			return 0, fmt.Errorf("reseal secret %d: %w", r.id, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE secrets SET ciphertext = ?, key_id = ?
			WHERE id = ?`, sealed, keyID, r.id); err != nil {
			return 0, fmt.Errorf("reseal secret %d: %w", r.id, unavailable(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("reseal secrets: %w", unavailable(err))
	}
	return len(todo), nil
}

// FindSecretKeyIDs lists the master key ids that stored secrets are sealed under, so start-up can
// refuse a configuration that lacks one of them.
func (db *DB) FindSecretKeyIDs(ctx context.Context) ([]string, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT DISTINCT key_id FROM secrets
		WHERE source = 'stored' ORDER BY key_id`)
	if err != nil {
		return nil, fmt.Errorf("find secret key ids: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("find secret key ids: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}
