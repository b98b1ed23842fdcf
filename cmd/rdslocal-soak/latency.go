package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
	"github.com/aws/aws-sdk-go-v2/service/rds/types"
)

// latencyResult is the commit latency of one kind of writer.
type latencyResult struct {
	engine, setup string
	p50, p99      time.Duration
	perSec        float64 // commits/s with latencyClients clients
}

const (
	latencyCommits = 1000            // sequential commits of one client
	latencyClients = 8               // concurrent clients for the throughput
	latencyFor     = 5 * time.Second // of the throughput run
)

// latency measures single-row INSERT commits straight to the writer of a
// lone instance (asynchronous: nothing waits for a replica), a Multi-AZ
// instance (its standby is synchronous) and a cluster with two readers
// (synchronous to either), for both engines.
func (s *soak) latency(ctx context.Context) error {
	type setup struct{ engine, name, kind string }
	var setups []setup
	for _, e := range []struct{ single, cluster string }{{"postgres", "aurora-postgresql"}, {"mariadb", "aurora-mysql"}} {
		setups = append(setups,
			setup{e.single, "lat-" + e.single + "-lone", "lone instance (asynchronous)"},
			setup{e.single, "lat-" + e.single + "-maz", "Multi-AZ instance (synchronous standby)"},
			setup{e.cluster, "lat-" + e.cluster, "cluster writer, 2 readers (synchronous to one)"})
	}
	for _, su := range setups {
		logf("commit latency: %s %s", su.engine, su.kind)
		var in types.DBInstance
		var err error
		switch {
		case su.kind[0] == 'l':
			in, err = s.createInstance(ctx, su.engine, su.name, "db.m5.large", false)
		case su.kind[0] == 'M':
			in, err = s.createInstance(ctx, su.engine, su.name, "db.m5.large", true)
		default:
			if err = s.createCluster(ctx, su.engine, su.name, "db.r6g.large", 2); err == nil {
				in, err = s.instance(ctx, su.name+"-1")
			}
		}
		if err != nil {
			return err
		}
		// Give the engine layer a health round to set synchronous
		// replication up for every replica.
		if err := sleep(ctx, 2*time.Second); err != nil {
			return err
		}
		r, err := measureCommits(ctx, su.engine, in)
		if err != nil {
			return fmt.Errorf("%s %s: %w", su.engine, su.kind, err)
		}
		r.engine, r.setup = su.engine, su.kind
		s.lat = append(s.lat, r)
		logf("  p50 %v, p99 %v, %.0f commits/s with %d clients", r.p50, r.p99, r.perSec, latencyClients)
		s.deleteLatency(ctx, su.name, su.kind[0] == 'c')
	}
	return nil
}

// deleteLatency removes what a latency measurement made (in the
// background of the API: the servers stop soon after).
func (s *soak) deleteLatency(ctx context.Context, name string, cluster bool) {
	if !cluster {
		_, _ = s.rc.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String(name), SkipFinalSnapshot: aws.Bool(true)})
		return
	}
	for i := 3; i >= 1; i-- {
		_, _ = s.rc.DeleteDBInstance(ctx, &rds.DeleteDBInstanceInput{DBInstanceIdentifier: aws.String(fmt.Sprintf("%s-%d", name, i)), SkipFinalSnapshot: aws.Bool(true)})
	}
	for range 100 {
		if _, err := s.rc.DeleteDBCluster(ctx, &rds.DeleteDBClusterInput{DBClusterIdentifier: aws.String(name), SkipFinalSnapshot: aws.Bool(true)}); err == nil {
			return
		}
		if sleep(ctx, 100*time.Millisecond) != nil {
			return
		}
	}
}

func measureCommits(ctx context.Context, engine string, in types.DBInstance) (latencyResult, error) {
	var r latencyResult
	db, err := openDirect(engine, in)
	if err != nil {
		return r, err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE lat (id int PRIMARY KEY, v varchar(20))"); err != nil {
		return r, err
	}
	db.SetMaxOpenConns(latencyClients)
	var one []time.Duration
	c, err := db.Conn(ctx)
	if err != nil {
		return r, err
	}
	for i := range latencyCommits {
		start := time.Now()
		if _, err := c.ExecContext(ctx, fmt.Sprintf("INSERT INTO lat VALUES (%d, 'one')", i)); err != nil {
			c.Close()
			return r, err
		}
		one = append(one, time.Since(start))
	}
	c.Close()
	slices.Sort(one)
	r.p50, r.p99 = one[len(one)/2], one[len(one)*99/100]

	var n atomic.Int64
	next := atomic.Int64{}
	next.Store(latencyCommits)
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	end := time.Now().Add(latencyFor)
	for range latencyClients {
		wg.Go(func() {
			c, err := db.Conn(ctx)
			if err != nil {
				errOnce.Do(func() { firstErr = err })
				return
			}
			defer c.Close()
			for time.Now().Before(end) {
				if _, err := c.ExecContext(ctx, fmt.Sprintf("INSERT INTO lat VALUES (%d, 'many')", next.Add(1))); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return r, firstErr
	}
	r.perSec = float64(n.Load()) / latencyFor.Seconds()
	return r, nil
}
