package enginetest

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rdslocal/rdslocal/engine"
)

func TestServers(t *testing.T) {
	env, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("mariadb", func(t *testing.T) {
		my, err := env.MariaDB(Options{MaxConnections: 17})
		if errors.Is(err, engine.ErrUnsupported) {
			t.Skip(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := my.CreateUser(ctx, "app", "app-pw"); err != nil {
			t.Fatal(err)
		}
		db := my.DB("")
		defer db.Close()
		var n int
		if err := db.QueryRowContext(ctx, "SELECT @@max_connections").Scan(&n); err != nil || n != 17 {
			t.Fatalf("max_connections %d, %v", n, err)
		}
		if err := my.Restart(); err != nil {
			t.Fatal(err)
		}
		if err := my.Exec(ctx, "CREATE DATABASE x"); err != nil {
			t.Fatal(err)
		}
		my.Kill()
		if err := my.Exec(ctx, "SELECT 1"); err == nil {
			t.Fatal("killed server answers")
		}
		if err := my.Start(); err != nil {
			t.Fatal(err)
		}
		// A second server comes from the template.
		my2, err := env.MariaDB(Options{})
		if err != nil {
			t.Fatal(err)
		}
		if my2.Port == my.Port {
			t.Fatal("same port")
		}
	})
	t.Run("postgres", func(t *testing.T) {
		pg, err := env.Postgres(Options{MaxConnections: 20})
		if errors.Is(err, engine.ErrUnsupported) {
			t.Skip(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := pg.CreateUser(ctx, "app", "app-pw"); err != nil {
			t.Fatal(err)
		}
		c, err := pgx.Connect(ctx, "host=127.0.0.1 port="+itoa(pg.Port)+" user=app password=app-pw dbname=postgres sslmode=disable")
		if err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
	})
}

func itoa(n int) string { return strconv.Itoa(n) }
