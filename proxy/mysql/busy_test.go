package mysql

import (
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rdslocal/rdslocal/proxy"
)

// TestServerOutOfSlots: when the server refuses the proxy another
// connection for lack of slots (here the login user's
// MAX_USER_CONNECTIONS, 1226; 1040 for max_connections), the proxy waits
// for one of its own connections to come back, as when its budget is used
// up, instead of passing the refusal to the client; the target stays
// AVAILABLE.
func TestServerOutOfSlots(t *testing.T) {
	srv := requireMariaDB(t)
	ctx := ctxT(t, 60*time.Second)
	const user, pw = "app_capped", "capped-secret-pw"
	if err := srv.Exec(ctx, "CREATE USER IF NOT EXISTS "+user+"@'%' IDENTIFIED BY '"+pw+"' WITH MAX_USER_CONNECTIONS 3",
		"GRANT ALL ON "+testDB+".* TO "+user+"@'%'"); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, srv, harnessOpts{maxConns: 20, borrowTimeout: 20 * time.Second, mod: func(s *proxy.ProxySpec) {
		s.Auth = append(s.Auth, proxy.AuthSpec{UserName: user, SecretArn: "arn:capped", IAMAuth: IAMDisabled, ClientPasswordAuthType: AuthNative})
	}})
	h.secrets.put("arn:capped", user, pw)

	// A direct session takes one of the user's three connections.
	direct, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/%s", user, pw, srv.Addr(), testDB))
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	held, err := direct.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	const clients, rounds = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, clients*rounds)
	for i := range clients {
		wg.Go(func() {
			db := h.open(user, pw, testDB, "")
			db.SetMaxOpenConns(1)
			for range rounds {
				tx, err := db.BeginTx(ctx, nil)
				if err == nil {
					_, err = tx.ExecContext(ctx, "SELECT SLEEP(0.05)")
					if err == nil {
						err = tx.Commit()
					} else {
						tx.Rollback()
					}
				}
				if err != nil {
					errs <- fmt.Errorf("client %d: %w", i, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n < 5 {
			t.Error(err)
		}
		n++
	}
	if n > 0 {
		t.Fatalf("%d of %d transactions failed", n, clients*rounds)
	}
	if st, reason, desc := h.m.TargetHealth(h.spec.ID, "db-1"); st != "AVAILABLE" {
		t.Fatalf("target health %s %s %s", st, reason, desc)
	}
}
