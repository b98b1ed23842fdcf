package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/rds"
)

// event is one failover of the soak.
type event struct {
	kind                 string // "FailoverDBCluster" or "SIGKILL"
	at                   time.Time
	oldWriter, newWriter string
	oldPort              int
	settle               time.Duration // until every member and target is available again
	err                  string
}

// procStats is what can be seen of rdslocal from outside: its threads,
// open files and RSS (/proc), its goroutines and the proxy gauges
// (/metrics).
type procStats struct {
	threads, fds int
	goroutines   int64 // go_goroutines of /metrics; -1 when it does not say
	rssKB        int64
	metrics      map[string]int64 // proxy gauges from /metrics, summed over labels
	dbConns      map[string]int64 // DatabaseConnections by target
}

type soakResult struct {
	clients       int
	duration      time.Duration
	started, end  time.Time
	events        []event
	cs            *clients
	before, after procStats
	acked         int
	lost          int
	lostByClass   [nClasses + 1]int // the last one: the probe
	finalWriter   string
}

func (s *soak) soak(ctx context.Context) error {
	logf("soak: %s cluster with %d readers", s.opt.engine, s.opt.readers)
	if err := s.createCluster(ctx, s.opt.engine, clusterID, "db.r6g.large", s.opt.readers); err != nil {
		return err
	}
	if err := s.createProxy(ctx); err != nil {
		return err
	}
	w, _, err := s.writer(ctx, clusterID)
	if err != nil {
		return err
	}
	win, err := s.instance(ctx, w)
	if err != nil {
		return err
	}
	db, err := openDirect(s.opt.engine, win)
	if err != nil {
		return err
	}
	create := "CREATE TABLE soak (id bigint PRIMARY KEY, client int NOT NULL, class int NOT NULL, at timestamptz NOT NULL DEFAULT now())"
	if s.mysql() {
		create = "CREATE TABLE soak (id bigint PRIMARY KEY, client int NOT NULL, class int NOT NULL, at timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB"
	}
	_, err = db.ExecContext(ctx, create)
	db.Close()
	if err != nil {
		return err
	}
	if err := s.waitSettled(ctx, time.Minute); err != nil {
		return err
	}
	res := &soakResult{clients: s.opt.clients}
	s.res = res
	res.before = s.procStats()

	cctx, stopClients := context.WithCancel(ctx)
	defer stopClients()
	cs := newClients(s.mysql(), s.proxyDSN(), s.opt.think)
	res.cs = cs
	logf("soak: %d clients for %s, a failover every %s", s.opt.clients, s.opt.duration, s.opt.interval)
	res.started = time.Now()
	cs.start(cctx, s.opt.clients, 10*time.Second)
	end := res.started.Add(s.opt.duration)
	if err := sleep(ctx, 15*time.Second); err != nil { // ramp-up
		return err
	}
	kinds := []string{"FailoverDBCluster", "SIGKILL"}
	for i := 0; time.Now().Add(s.opt.interval).Before(end); i++ {
		if err := sleep(ctx, s.opt.interval); err != nil {
			return err
		}
		ev := event{kind: kinds[i%len(kinds)]}
		ev.oldWriter, ev.oldPort, err = s.writer(ctx, clusterID)
		if err != nil {
			return err
		}
		if ev.kind == "SIGKILL" {
			err = s.killServer(ev.oldWriter)
			ev.at = time.Now() // the death
		} else {
			ev.at = time.Now() // the call
			_, err = s.rc.FailoverDBCluster(ctx, &rds.FailoverDBClusterInput{DBClusterIdentifier: aws.String(clusterID)})
		}
		if err != nil {
			return fmt.Errorf("event %d (%s): %w", i+1, ev.kind, err)
		}
		// rdslocal sees the death (or starts the hand-over) first; then
		// everything comes back.
		if err := s.waitNoticed(ctx, ev.oldWriter); err != nil {
			return fmt.Errorf("event %d (%s): %w", i+1, ev.kind, err)
		}
		if err := s.waitSettled(ctx, 3*time.Minute); err != nil {
			ev.err = err.Error()
			logf("event %d: %v", i+1, err)
		}
		ev.settle = time.Since(ev.at)
		ev.newWriter, _, _ = s.writer(ctx, clusterID)
		res.events = append(res.events, ev)
		logf("event %d: %s of %s → writer %s, settled in %v; probe's first write after %v",
			i+1, ev.kind, ev.oldWriter, ev.newWriter, ev.settle.Round(time.Millisecond), fmtDur(cs.probe.firstOK(ev.at, notPort(ev))))
	}
	if err := sleep(ctx, time.Until(end)); err != nil {
		return err
	}
	res.end = time.Now()
	logf("soak: stopping the clients")
	stopClients()
	cs.wg.Wait()
	res.duration = res.end.Sub(res.started)
	if err := s.waitSettled(ctx, 3*time.Minute); err != nil {
		logf("after the soak: %v", err)
	}
	if err := sleep(ctx, 5*time.Second); err != nil {
		return err
	}
	res.after = s.procStats()
	return s.verify(ctx, res)
}

// waitNoticed waits until the API shows that the writer old is no
// longer serving as such: another writer, or old (or the cluster) not
// available.
func (s *soak) waitNoticed(ctx context.Context, old string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		w, _, err := s.writer(ctx, clusterID)
		if err == nil && w != old {
			return nil
		}
		in, err := s.instance(ctx, old)
		if err == nil && aws.ToString(in.DBInstanceStatus) != "available" {
			return nil
		}
		if out, err := s.rc.DescribeDBClusters(ctx, &rds.DescribeDBClustersInput{DBClusterIdentifier: aws.String(clusterID)}); err == nil &&
			aws.ToString(out.DBClusters[0].Status) != "available" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the API still shows %s as the available writer a minute later", old)
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
}

// notPort is the port a write must not come from to count as the first
// after ev: the former writer's (it serves until the hand-over fences it;
// a reply it sent just before its death may be read just after), unless
// the former writer is the writer again (it restarted in place, when no
// reader had every write it acknowledged).
func notPort(ev event) int {
	if ev.newWriter == ev.oldWriter {
		return 0
	}
	return ev.oldPort
}

// verify counts the acknowledged writes missing from the final writer.
func (s *soak) verify(ctx context.Context, res *soakResult) error {
	w, _, err := s.writer(ctx, clusterID)
	if err != nil {
		return err
	}
	res.finalWriter = w
	in, err := s.instance(ctx, w)
	if err != nil {
		return err
	}
	db, err := openDirect(s.opt.engine, in)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT id FROM soak")
	if err != nil {
		return err
	}
	have := map[int64]bool{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return err
		}
		have[id] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	recs := append(res.cs.rec[:], res.cs.probe)
	for i, r := range recs {
		r.mu.Lock()
		for _, id := range r.acked {
			res.acked++
			if !have[id] {
				res.lost++
				res.lostByClass[i]++
			}
		}
		r.mu.Unlock()
	}
	logf("soak: %d acknowledged writes, %d missing on the final writer %s (%d rows there)", res.acked, res.lost, w, len(have))
	return nil
}

// procStats reads rdslocal's threads, open files and RSS, and its
// goroutines and proxy gauges from /metrics.
func (s *soak) procStats() procStats {
	pid := s.rdslocal.Process.Pid
	p := procStats{goroutines: -1}
	if f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) >= 2 && fs[0] == "Threads:" {
				p.threads, _ = strconv.Atoi(fs[1])
			}
			if len(fs) >= 2 && fs[0] == "VmRSS:" {
				p.rssKB, _ = strconv.ParseInt(fs[1], 10, 64)
			}
		}
		f.Close()
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		p.fds = len(ents)
	}
	p.metrics, p.dbConns = map[string]int64{}, map[string]int64{}
	resp, err := http.Get(s.apiURL + "/metrics")
	if err != nil {
		return p
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			p.goroutines, _ = strconv.ParseInt(v, 10, 64)
			continue
		}
		name, rest, ok := strings.Cut(line, "{")
		if !ok {
			continue
		}
		i := strings.LastIndexByte(rest, ' ')
		v, err := strconv.ParseInt(rest[i+1:], 10, 64)
		if err != nil {
			continue
		}
		name = strings.TrimPrefix(name, "rdslocal_")
		p.metrics[name] += v
		if name == "DatabaseConnections" {
			if _, t, ok := strings.Cut(rest, `target="`); ok {
				t, _, _ = strings.Cut(t, `"`)
				p.dbConns[t] += v
			}
		}
	}
	return p
}

func fmtDur(d time.Duration) string {
	if d < 0 {
		return "none"
	}
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Millisecond).String()
}
