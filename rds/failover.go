package rds

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rdslocal/rdslocal/engine"
)

// High availability. The engine layer does the database work (switchover,
// promotion, re-pointing, rebuilding a former primary as a replica) and
// reports what happens on its own (a server died, a replica stopped
// replicating); this file decides what RDS would do about it, keeps the
// records and events in step, and hands the data plane the change after
// each step: an instance leaves the proxy targets the moment it stops
// serving its role and comes back only once it serves its new one.

// haKey names what a failover works on, so two never run on it at once.
func haKey(st *regionState, kind, id string) string {
	return st.Account + "/" + st.Region + "/" + kind + ":" + id
}

// claimHA marks key busy; false if it already is. The caller holds r.mu.
func (r *RDS) claimHA(key string) bool {
	if r.haBusy[key] {
		return false
	}
	r.haBusy[key] = true
	return true
}

// releaseHA clears key.
func (r *RDS) releaseHA(key string) {
	r.mu.Lock()
	delete(r.haBusy, key)
	r.mu.Unlock()
}

// awaitHA waits until key is free and claims it (for failovers the engine
// layer's reports start). It gives up after engineTimeout.
func (r *RDS) awaitHA(key string) bool {
	deadline := time.Now().Add(engineTimeout)
	for {
		r.mu.Lock()
		ok := r.claimHA(key)
		r.mu.Unlock()
		if ok {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// recordOf finds the instance record an engine ID belongs to, and whether
// the ID is its hidden Multi-AZ standby. The caller holds r.mu.
func (r *RDS) recordOf(eid string) (*regionState, *instance, bool) {
	for _, st := range r.states {
		if !strings.HasPrefix(eid, st.Account+"."+st.Region+".") {
			continue
		}
		for _, in := range st.Instances {
			switch eid {
			case primaryEID(st, in):
				return st, in, false
			case standbyEID(st, in):
				return st, in, in.MultiAZ
			}
		}
	}
	return nil, nil, false
}

// onEngineEvent handles what the engine layer reports.
func (r *RDS) onEngineEvent(ev engine.Event) {
	r.mu.Lock()
	st, in, standby := r.recordOf(ev.ID)
	if in == nil || in.Status == "deleting" {
		r.mu.Unlock()
		return
	}
	switch ev.Kind {
	case engine.EventReplication:
		if !standby && in.Cluster != "" && !(ev.First && ev.Running) {
			if ev.Running {
				r.event(st, srcInstance, in.ID, "RDS-EVENT-0046", "read replica", "Replication for the Read Replica resumed.")
			} else {
				r.event(st, srcInstance, in.ID, "RDS-EVENT-0045", "read replica", "Replication has stopped.")
			}
		}
		r.mu.Unlock()
		r.changed() // a reader leaves or rejoins the proxy targets
	case engine.EventDown:
		r.mu.Unlock()
		go r.recoverDown(st, in, ev.ID, standby, ev.Detail)
	default:
		r.mu.Unlock()
	}
}

// recoverDown does what RDS does when a server dies: a cluster writer
// fails over to a reader; a Multi-AZ primary fails over to its standby;
// anything else (a reader, a standby, a single instance) is restarted.
func (r *RDS) recoverDown(st *regionState, in *instance, eid string, standby bool, why string) {
	key := haKey(st, "instance", in.ID)
	r.mu.Lock()
	if in.Cluster != "" {
		key = haKey(st, "cluster", in.Cluster)
	}
	r.mu.Unlock()
	if !r.awaitHA(key) {
		r.log.Warn("a failover is still running; the dead server is left alone", "instance", in.ID, "server", eid)
		return
	}
	defer r.releaseHA(key)
	r.mu.Lock()
	if st.Instances[in.ID] != in || in.Status == "deleting" || (standby && standbyEID(st, in) != eid) || (!standby && primaryEID(st, in) != eid) {
		r.mu.Unlock() // deleted, renamed roles, or already handled
		return
	}
	r.log.Warn("DB instance server died", "instance", in.ID, "server", eid, "why", why)
	switch {
	case standby:
		r.event(st, srcInstance, in.ID, "RDS-EVENT-0361", "recovery", "Recovery of standby DB instance has started.")
		r.mu.Unlock()
		r.restartServer(st, in, eid, func() {
			r.event(st, srcInstance, in.ID, "RDS-EVENT-0362", "recovery", "Recovery of standby DB instance has completed.")
		}, false)
	case in.Cluster != "" && st.Clusters[in.Cluster] != nil && r.clusterWriter(st, st.Clusters[in.Cluster]) == in.ID:
		cl := st.Clusters[in.Cluster]
		cl.Status = "failing-over"
		r.mu.Unlock()
		r.failoverCluster(st, cl, in.ID, "", false)
	case in.MultiAZ && in.Cluster == "" && in.ExternalEndpoint == "":
		r.mu.Unlock()
		r.failoverMultiAZ(st, in, false)
	default:
		in.Status = "rebooting"
		r.mu.Unlock()
		r.changed()
		r.restartServer(st, in, eid, func() {
			r.event(st, srcInstance, in.ID, "RDS-EVENT-0006", "availability", "DB instance restarted.")
		}, true)
	}
}

// restartServer reboots one server and records the outcome: with
// ownStatus the record's status follows (available or failed); done runs
// under r.mu after a success.
func (r *RDS) restartServer(st *regionState, in *instance, eid string, done func(), ownStatus bool) {
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	err := r.opts.Engines.Reboot(ctx, eid)
	r.mu.Lock()
	if st.Instances[in.ID] == in {
		switch {
		case err != nil:
			r.log.Warn("cannot restart a DB instance server", "instance", in.ID, "server", eid, "err", err)
			if ownStatus {
				in.Status, in.StatusMessage = "failed", err.Error()
			}
		default:
			if ownStatus {
				in.Status, in.StatusMessage = "available", ""
			}
			done()
		}
	}
	r.mu.Unlock()
	r.changed()
}

// classRank orders instance classes by size, for promotion ties:
// micro < small < medium < large < xlarge < 2xlarge < …
func classRank(class string) int {
	size := class[strings.LastIndexByte(class, '.')+1:]
	switch size {
	case "micro":
		return 1
	case "small":
		return 2
	case "medium":
		return 3
	case "large":
		return 4
	case "xlarge":
		return 5
	}
	if n, ok := strings.CutSuffix(size, "xlarge"); ok {
		var v int
		if _, err := fmt.Sscanf(n, "%d", &v); err == nil {
			return 5 + v
		}
	}
	return 0
}

// failoverCluster makes target (or, with target "", the best reader) the
// writer of cl. planned: FailoverDBCluster with a running writer, which
// hands over without losing a write; otherwise the writer is dead and
// the reader is promoted as it is. The caller has set cl.Status to
// failing-over and claimed the cluster's HA key.
func (r *RDS) failoverCluster(st *regionState, cl *cluster, oldWriter, target string, planned bool) {
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	r.mu.Lock()
	old := st.Instances[oldWriter]
	if old == nil {
		cl.Status = "available"
		r.mu.Unlock()
		return
	}
	oldEID := primaryEID(st, old)
	type cand struct {
		in         *instance
		eid        string
		tier, rank int
		pos        uint64
	}
	var cands []cand
	for _, m := range clusterMembers(st, cl.ID) {
		if m.ID != oldWriter && m.Status == "available" && m.ReplicaOf == oldWriter && (target == "" || m.ID == target) {
			cands = append(cands, cand{in: m, eid: primaryEID(st, m), tier: m.PromotionTier, rank: classRank(m.Class)})
		}
	}
	// The writer leaves service now: the proxies queue new requests
	// until there is a writer again.
	old.Status = "rebooting"
	r.mu.Unlock()
	r.changed()

	// Aurora picks by promotion tier, then size; rdslocal then prefers
	// the reader that received the most of the writer's history. A reader
	// that is not replicating is not a candidate.
	var usable []cand
	for _, c := range cands {
		g, err := r.opts.Engines.Get(c.eid)
		if err != nil || g.Status != engine.StatusAvailable || !g.Replication.Running && planned {
			continue
		}
		if pos, err := r.opts.Engines.Position(ctx, c.eid); err == nil {
			c.pos = pos
			usable = append(usable, c)
		}
	}
	if !planned && !holdsAcknowledged(r.opts.Engines, oldEID, usable, func(c cand) string { return c.eid }) {
		// Promoting a reader would lose commits the writer acknowledged:
		// the writer comes back on its own data instead.
		r.log.Warn("no reader is known to have every write the dead writer acknowledged; restarting the writer", "cluster", cl.ID, "writer", oldWriter)
		usable = nil
	}
	r.log.Info("cluster failover", "cluster", cl.ID, "writer", oldWriter, "planned", planned, "candidates", len(cands), "usable", len(usable))
	sort.SliceStable(usable, func(i, j int) bool {
		a, b := usable[i], usable[j]
		if a.tier != b.tier {
			return a.tier < b.tier
		}
		if a.rank != b.rank {
			return a.rank > b.rank
		}
		return a.pos > b.pos
	})

	var winner *cand
	for i := range usable {
		c := &usable[i]
		r.mu.Lock()
		r.event(st, srcCluster, cl.ID, failoverStartID(old, c.in), "failover", failoverStartMessage(old, c.in))
		r.mu.Unlock()
		var err error
		if planned {
			err = r.opts.Engines.Switchover(ctx, oldEID, c.eid)
		} else {
			err = r.opts.Engines.Promote(ctx, c.eid)
		}
		if err == nil {
			winner = c
			break
		}
		r.log.Warn("cluster failover failed", "cluster", cl.ID, "target", c.in.ID, "err", err)
		r.mu.Lock()
		r.event(st, srcCluster, cl.ID, "RDS-EVENT-0069", "failover", "Cluster failover failed, check the health of your cluster instances and try again.")
		r.mu.Unlock()
		if planned {
			break // the writer is back in service
		}
	}

	if winner == nil {
		if planned {
			r.mu.Lock()
			if len(usable) == 0 {
				r.event(st, srcCluster, cl.ID, "RDS-EVENT-0069", "failover", "Cluster failover failed, check the health of your cluster instances and try again.")
			}
			cl.Status = "available"
			if g, err := r.opts.Engines.Get(oldEID); err == nil && g.Status == engine.StatusAvailable {
				old.Status = "available"
			} else {
				old.Status, old.StatusMessage = "failed", "the writer did not come back after a failed failover"
			}
			r.mu.Unlock()
			r.changed()
			return
		}
		// No reader can take over: the writer restarts where it is.
		r.mu.Lock()
		r.event(st, srcCluster, cl.ID, "RDS-EVENT-0070", "failover", fmt.Sprintf("Promoting previous primary again: %s.", old.ID))
		r.mu.Unlock()
		r.restartServer(st, old, oldEID, func() {
			r.event(st, srcInstance, old.ID, "RDS-EVENT-0006", "availability", "DB instance restarted.")
			r.event(st, srcCluster, cl.ID, "RDS-EVENT-0071", "failover", fmt.Sprintf("Completed failover to DB instance: %s.", old.ID))
		}, true)
		r.mu.Lock()
		cl.Status = "available"
		r.mu.Unlock()
		r.changed()
		return
	}

	// The new writer serves; everything else follows in the background
	// of this call.
	nw := winner.in
	r.mu.Lock()
	cl.Writer, nw.ReplicaOf = nw.ID, ""
	old.ReplicaOf = nw.ID
	cl.Status = "available"
	r.event(st, srcCluster, cl.ID, "RDS-EVENT-0071", "failover", fmt.Sprintf("Completed failover to DB instance: %s.", nw.ID))
	var others []*instance
	for _, m := range clusterMembers(st, cl.ID) {
		if m != nw && m != old && m.ReplicaOf == oldWriter {
			others = append(others, m)
		}
	}
	r.mu.Unlock()
	r.changed()

	for _, m := range others {
		r.follow(ctx, st, m, winner.eid, nw.ID)
	}
	r.rebuildFormer(ctx, st, old, oldEID, winner.eid, nw.ID, func() {
		r.event(st, srcInstance, old.ID, "RDS-EVENT-0006", "availability", "DB instance restarted.")
	})
}

// holdsAcknowledged reports whether promoting one of the replicas of the
// dead primary loses none of the commits it acknowledged: the primary
// died with synchronous replicas (its commits waited for one of them) and
// one of those is among the candidates. The engine's Promote then takes
// from the sibling that received most whatever the promoted replica
// lacks. Without that (the synchronous replicas were down or behind when
// the primary died, so it went on alone) only the primary's own data has
// everything: RDS would recover it in place too.
func holdsAcknowledged[T any](e Engines, primaryEID string, cands []T, eid func(T) string) bool {
	g, err := e.Get(primaryEID)
	if err != nil {
		return false
	}
	for _, c := range cands {
		if slices.Contains(g.SyncReplicas, eid(c)) {
			return true
		}
	}
	return false
}

// failoverStartID and failoverStartMessage are the event that starts a
// cluster failover: same AZ or cross AZ, from the records' zones.
func failoverStartID(from, to *instance) string {
	if from.AvailabilityZone == to.AvailabilityZone {
		return "RDS-EVENT-0072"
	}
	return "RDS-EVENT-0073"
}

func failoverStartMessage(from, to *instance) string {
	if from.AvailabilityZone == to.AvailabilityZone {
		return fmt.Sprintf("Started same AZ failover to DB instance: %s.", to.ID)
	}
	return fmt.Sprintf("Started cross AZ failover to DB instance: %s.", to.ID)
}

// follow re-points a reader at the new writer; one that cannot follow it
// (it had more of the old writer's history) is rebuilt under it.
func (r *RDS) follow(ctx context.Context, st *regionState, m *instance, writerEID, writerID string) {
	eid := primaryEID(st, m)
	err := r.opts.Engines.Repoint(ctx, eid, writerEID)
	if err != nil {
		r.log.Warn("reader cannot follow the new writer; rebuilding it", "instance", m.ID, "err", err)
		r.mu.Lock()
		m.Status = "rebooting"
		r.mu.Unlock()
		r.changed()
		err = r.opts.Engines.Demote(ctx, eid, writerEID)
	}
	r.mu.Lock()
	if st.Instances[m.ID] == m {
		m.ReplicaOf = writerID
		if err != nil {
			m.Status, m.StatusMessage = "failed", err.Error()
		} else if m.Status == "rebooting" {
			m.Status, m.StatusMessage = "available", ""
			r.event(st, srcInstance, m.ID, "RDS-EVENT-0006", "availability", "DB instance restarted.")
		}
	}
	r.mu.Unlock()
	r.changed()
}

// rebuildFormer rebuilds a former primary as a replica of the new one and
// brings its record back once it replicates.
func (r *RDS) rebuildFormer(ctx context.Context, st *regionState, old *instance, oldEID, newEID, newID string, done func()) {
	err := r.opts.Engines.Demote(ctx, oldEID, newEID)
	r.mu.Lock()
	if st.Instances[old.ID] == old {
		if err != nil {
			r.log.Warn("former writer cannot be rebuilt as a replica", "instance", old.ID, "err", err)
			if old.Cluster != "" {
				old.Status, old.StatusMessage = "failed", err.Error()
			}
		} else {
			if old.Cluster != "" {
				old.Status, old.StatusMessage = "available", ""
			}
			done()
		}
	}
	r.mu.Unlock()
	r.changed()
}

// failoverMultiAZ promotes a Multi-AZ instance's standby: planned
// (RebootDBInstance with ForceFailover) hands over without losing a
// write; otherwise the primary is dead. The former primary becomes the
// new standby. The caller holds the instance's HA key.
func (r *RDS) failoverMultiAZ(st *regionState, in *instance, planned bool) {
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	r.mu.Lock()
	pEID, sEID := primaryEID(st, in), standbyEID(st, in)
	in.Status = "rebooting"
	r.event(st, srcInstance, in.ID, "RDS-EVENT-0013", "failover", "Multi-AZ instance failover started.")
	r.mu.Unlock()
	r.changed()

	err := fmt.Errorf("the standby is not replicating")
	if !planned && !holdsAcknowledged(r.opts.Engines, pEID, []string{sEID}, func(id string) string { return id }) {
		err = fmt.Errorf("the standby was not synchronous when the primary died")
	} else if g, gerr := r.opts.Engines.Get(sEID); gerr == nil && g.Status == engine.StatusAvailable && (g.Replication.Running || !planned) {
		if planned {
			err = r.opts.Engines.Switchover(ctx, pEID, sEID)
		} else {
			err = r.opts.Engines.Promote(ctx, sEID)
		}
	}
	if err != nil {
		// No standby to take over: the primary restarts in place.
		r.log.Warn("Multi-AZ failover not possible; restarting the primary", "instance", in.ID, "err", err)
		r.restartServer(st, in, pEID, func() {
			r.event(st, srcInstance, in.ID, "RDS-EVENT-0006", "availability", "DB instance restarted.")
		}, true)
		return
	}
	r.mu.Lock()
	if st.Instances[in.ID] == in {
		in.StandbyActive = !in.StandbyActive
		if g, err := r.opts.Engines.Get(sEID); err == nil {
			in.Address, in.Port = g.Host, g.Port
			r.addrs.claimPort(g.Port)
		}
		in.Status, in.StatusMessage = "available", ""
		r.event(st, srcInstance, in.ID, "RDS-EVENT-0049", "failover", "Multi-AZ instance failover completed.")
		r.event(st, srcInstance, in.ID, "RDS-EVENT-0361", "recovery", "Recovery of standby DB instance has started.")
	}
	r.mu.Unlock()
	r.changed()
	r.rebuildFormer(ctx, st, in, pEID, sEID, in.ID, func() {
		r.event(st, srcInstance, in.ID, "RDS-EVENT-0362", "recovery", "Recovery of standby DB instance has completed.")
	})
}
