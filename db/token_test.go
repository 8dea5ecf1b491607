package db

import (
	"context"
	"errors"
	"strings"
	"testing"
)

const testToken = "ph_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"

func mustCreateUser(tb testing.TB, d *DB, name string, role Role) User {
	tb.Helper()
	u, err := d.CreateUser(context.Background(), name, "$2a$10$notarealhash", role)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// TestTokens covers the token store: created under a hash with a prefix, found by the token,
// listed per user, revoked only by its owner (or an admin tool), and validated.
func TestTokens(t *testing.T) {
	d := mustOpenDB(t, Options{})
	ctx := context.Background()
	ann := mustCreateUser(t, d, "ann", RoleOperator)
	bob := mustCreateUser(t, d, "bob", RoleViewer)

	tok, err := d.CreateToken(ctx, ann.ID, "  nightly export ", testToken)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Label != "nightly export" || tok.Prefix != testToken[:TokenPrefixLen] ||
		tok.Username != "ann" || !tok.CreatedAt.Equal(testNow) || !tok.LastUsedAt.IsZero() {
		t.Errorf("token = %+v", tok)
	}

	// Only the hash and the prefix are stored.
	var hash, prefix string
	d.r.QueryRow(`SELECT token_hash, prefix FROM tokens WHERE id = ?`, tok.ID).Scan(&hash, &prefix)
	if hash != HashToken(testToken) || strings.Contains(hash, testToken) || len(prefix) != TokenPrefixLen {
		t.Errorf("stored hash %q prefix %q", hash, prefix)
	}

	got, u, err := d.FindTokenByToken(ctx, testToken)
	if err != nil || got.ID != tok.ID || u.ID != ann.ID || u.Role != RoleOperator {
		t.Fatalf("FindTokenByToken = %+v %+v %v", got, u, err)
	}
	if _, _, err := d.FindTokenByToken(ctx, testToken+"x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown token: err = %v, want ErrNotFound", err)
	}
	if err := d.TouchToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.FindTokenByID(ctx, tok.ID); !got.LastUsedAt.Equal(testNow) {
		t.Errorf("last used = %v, want %v", got.LastUsedAt, testNow)
	}

	// Disabled users' tokens are still found, with the user marked disabled: the caller refuses.
	if err := d.UpdateUserDisabled(ctx, ann.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, u, _ := d.FindTokenByToken(ctx, testToken); !u.Disabled {
		t.Error("token's user not marked disabled")
	}

	// Listing, and revoking: bob cannot revoke ann's token; ann can.
	if ts, _ := d.FindTokens(ctx, bob.ID); len(ts) != 0 {
		t.Errorf("bob's tokens = %d, want 0", len(ts))
	}
	if ts, _ := d.FindTokens(ctx, 0); len(ts) != 1 {
		t.Errorf("all tokens = %d, want 1", len(ts))
	}
	if _, err := d.DeleteToken(ctx, tok.ID, bob.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob revoking ann's token: err = %v, want ErrNotFound", err)
	}
	if del, err := d.DeleteToken(ctx, tok.ID, ann.ID); err != nil || del.Label != "nightly export" {
		t.Fatalf("revoke = %+v %v", del, err)
	}
	if _, _, err := d.FindTokenByToken(ctx, testToken); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoked token: err = %v, want ErrNotFound", err)
	}

	// Refusals.
	var ve *ValidationError
	if _, err := d.CreateToken(ctx, ann.ID, " ", testToken); !errors.As(err, &ve) {
		t.Errorf("empty label: err = %v, want a ValidationError", err)
	}
	if _, err := d.CreateToken(ctx, ann.ID, strings.Repeat("x", 101), testToken); !errors.As(err, &ve) {
		t.Errorf("long label: err = %v, want a ValidationError", err)
	}
	if _, err := d.CreateToken(ctx, 999, "x", testToken); !errors.Is(err, ErrNotFound) {
		t.Errorf("no such user: err = %v, want ErrNotFound", err)
	}
}

// TestUserRolesAndAdmins covers role changes (which end sessions) and the rule that at least
// one enabled admin remains.
func TestUserRolesAndAdmins(t *testing.T) {
	d := mustOpenDB(t, Options{})
	ctx := context.Background()
	root := mustCreateUser(t, d, "root", RoleAdmin)
	ann := mustCreateUser(t, d, "ann", RoleViewer)
	if _, err := d.CreateSession(ctx, ann.ID, "ann-session-token", "", ""); err != nil {
		t.Fatal(err)
	}

	if err := d.UpdateUserRole(ctx, ann.ID, RoleOperator); err != nil {
		t.Fatal(err)
	}
	if u, _ := d.FindUserByID(ctx, ann.ID); u.Role != RoleOperator {
		t.Errorf("role = %s, want operator", u.Role)
	}
	if _, _, err := d.FindSessionByToken(ctx, "ann-session-token"); !errors.Is(err, ErrNotFound) {
		t.Errorf("session after a role change: err = %v, want ErrNotFound", err)
	}
	if err := d.UpdateUserRole(ctx, ann.ID, RoleOperator); err != nil {
		t.Errorf("unchanged role: err = %v, want nil", err)
	}
	if err := d.UpdateUserRole(ctx, 999, RoleViewer); !errors.Is(err, ErrNotFound) {
		t.Errorf("no such user: err = %v, want ErrNotFound", err)
	}
	var ve *ValidationError
	if err := d.UpdateUserRole(ctx, ann.ID, "root"); !errors.As(err, &ve) {
		t.Errorf("bad role: err = %v, want a ValidationError", err)
	}

	// root is the only admin: neither demoted nor disabled, and nothing changed.
	if err := d.UpdateUserRole(ctx, root.ID, RoleViewer); !errors.As(err, &ve) {
		t.Errorf("demote last admin: err = %v, want a ValidationError", err)
	}
	if err := d.UpdateUserDisabled(ctx, root.ID, true); !errors.As(err, &ve) {
		t.Errorf("disable last admin: err = %v, want a ValidationError", err)
	}
	if u, _ := d.FindUserByID(ctx, root.ID); u.Role != RoleAdmin || u.Disabled {
		t.Errorf("root = %+v, want an enabled admin", u)
	}

	// With a second admin, the first may step down.
	if err := d.UpdateUserRole(ctx, ann.ID, RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if err := d.UpdateUserRole(ctx, root.ID, RoleViewer); err != nil {
		t.Errorf("demote with another admin: %v", err)
	}
}

func TestValidateUsername(t *testing.T) {
	for _, ok := range []string{"admin", "ann.lee", "a_b-c@x", "José", "山田"} {
		if err := ValidateUsername(ok); err != nil {
			t.Errorf("%q: %v, want valid", ok, err)
		}
	}
	for _, bad := range []string{"", "ann lee", "a/b", "<b>", strings.Repeat("a", 65), "tab\t"} {
		if err := ValidateUsername(bad); err == nil {
			t.Errorf("%q: valid, want refused", bad)
		}
	}
}
