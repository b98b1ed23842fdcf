package rds

import (
	"encoding/xml"
	"fmt"
	"strings"
	"time"

	"github.com/rdslocal/rdslocal/api"
)

// Event source types (DescribeEvents SourceType) rdslocal records.
const (
	srcInstance = "db-instance"
	srcCluster  = "db-cluster"
	srcProxy    = "db-proxy"
)

// event is one entry of the region's event log, with the event id and
// message text of "Amazon RDS event categories and event messages" (RDS
// User Guide). DescribeEvents has no element for the id; it is kept for
// the log.
type event struct {
	Date       time.Time
	SourceType string
	SourceID   string
	SourceArn  string
	ID         string // RDS-EVENT-nnnn
	Categories []string
	Message    string
}

// RDS keeps events for 14 days; rdslocal also keeps at most maxEvents per
// account and region.
const (
	eventRetention = 14 * 24 * time.Hour
	maxEvents      = 10000
)

// event records an event of a source. The caller holds r.mu.
func (r *RDS) event(st *regionState, srcType, srcID, id, category, msg string) {
	now := time.Now().UTC()
	var res string
	switch srcType {
	case srcInstance:
		res = "db:" + srcID
	case srcCluster:
		res = "cluster:" + srcID
	case srcProxy:
		if p := st.Proxies[srcID]; p != nil {
			res = "db-proxy:" + p.ID
		}
	}
	ev := event{Date: now, SourceType: srcType, SourceID: srcID, ID: id, Categories: []string{category}, Message: msg}
	if res != "" {
		ev.SourceArn = arn(st.Region, st.Account, res)
	}
	drop := 0
	for drop < len(st.Events) && (now.Sub(st.Events[drop].Date) > eventRetention || len(st.Events)-drop >= maxEvents) {
		drop++
	}
	st.Events = append(st.Events[drop:], ev)
	r.log.Info("RDS event", "event", id, "sourceType", srcType, "source", srcID, "message", msg, "account", st.Account, "region", st.Region)
}

type xmlEvent struct {
	SourceIdentifier string
	SourceType       string
	Message          string
	EventCategories  xmlEventCategories
	Date             string
	SourceArn        string `xml:",omitempty"`
}

type xmlEvents []xmlEvent

func (l xmlEvents) MarshalXML(e *xml.Encoder, s xml.StartElement) error {
	return api.MarshalItems(e, s, "Event", l)
}

type xmlEventCategories []string

func (l xmlEventCategories) MarshalXML(e *xml.Encoder, s xml.StartElement) error {
	return api.MarshalItems(e, s, "EventCategory", l)
}

func (r *RDS) describeEvents(c *api.Call) (any, error) {
	var in struct {
		SourceIdentifier *string
		SourceType       *string
		StartTime        *string
		EndTime          *string
		Duration         *int
		EventCategories  []string
		Filters          []filterInput // "This parameter isn't currently supported" (API reference)
		MaxRecords       *int64
		Marker           *string
	}
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if in.SourceIdentifier != nil && in.SourceType == nil {
		return nil, api.InvalidParameterCombination("Cannot specify SourceIdentifier without specifying SourceType.")
	}
	start, end, err := eventWindow(c.Now, in.StartTime, in.EndTime, in.Duration)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.region(c)
	var list []event
	for _, ev := range st.Events {
		if ev.Date.Before(start) || ev.Date.After(end) {
			continue
		}
		if in.SourceType != nil && ev.SourceType != *in.SourceType {
			continue
		}
		if in.SourceIdentifier != nil && !sameSource(ev, *in.SourceIdentifier) {
			continue
		}
		if len(in.EventCategories) > 0 && !anyCategory(ev.Categories, in.EventCategories) {
			continue
		}
		list = append(list, ev)
	}
	pg, marker, err := page(list, in.Marker, in.MaxRecords)
	if err != nil {
		return nil, err
	}
	out := xmlEvents{}
	for _, ev := range pg {
		out = append(out, xmlEvent{SourceIdentifier: ev.SourceID, SourceType: ev.SourceType, Message: ev.Message,
			EventCategories: ev.Categories, Date: api.ISOTime(ev.Date), SourceArn: ev.SourceArn})
	}
	return struct {
		Marker string `xml:",omitempty"`
		Events xmlEvents
	}{marker, out}, nil
}

// eventWindow is the time range DescribeEvents covers: Duration minutes
// (60 by default) ending now; from StartTime to EndTime when both are
// given; Duration minutes from StartTime, or up to EndTime, when one is.
func eventWindow(now time.Time, startArg, endArg *string, durationArg *int) (time.Time, time.Time, error) {
	duration := 60 * time.Minute
	if durationArg != nil {
		if *durationArg < 0 {
			return time.Time{}, time.Time{}, api.InvalidParameterValue("Invalid value %d for Duration: it must not be negative.", *durationArg)
		}
		duration = time.Duration(*durationArg) * time.Minute
	}
	parse := func(s *string) (time.Time, error) {
		t, err := api.ParseTimestamp(*s)
		if err != nil {
			return time.Time{}, api.InvalidParameterValue("Invalid timestamp %q", *s)
		}
		return t, nil
	}
	var start, end time.Time
	var err error
	switch {
	case startArg != nil && endArg != nil:
		if start, err = parse(startArg); err == nil {
			end, err = parse(endArg)
		}
	case startArg != nil:
		if start, err = parse(startArg); err == nil {
			end = now
			if durationArg != nil {
				end = start.Add(duration)
			}
		}
	case endArg != nil:
		if end, err = parse(endArg); err == nil {
			start = end.Add(-duration)
		}
	default:
		start, end = now.Add(-duration), now
	}
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	if end.Before(start) {
		return time.Time{}, time.Time{}, api.InvalidParameterValue("The EndTime %s is before the StartTime %s.", api.ISOTime(end), api.ISOTime(start))
	}
	return start, end, nil
}

// sameSource reports whether an event's source is id: an identifier (case
// insensitive for instances and clusters) or the source's ARN.
func sameSource(ev event, id string) bool {
	if ev.SourceArn != "" && ev.SourceArn == id {
		return true
	}
	if ev.SourceType == srcProxy {
		return ev.SourceID == id
	}
	return strings.EqualFold(ev.SourceID, id)
}

func anyCategory(have, want []string) bool {
	for _, w := range want {
		for _, h := range have {
			if strings.EqualFold(h, w) {
				return true
			}
		}
	}
	return false
}

// proxyTargetAdded records, for every proxy tracking in's cluster, that
// the new cluster member became one of its targets. The caller holds
// r.mu.
func (r *RDS) proxyTargetAdded(st *regionState, in *instance) {
	for _, p := range st.Proxies {
		if contains(p.TargetGroup.Clusters, []string{in.Cluster}) {
			r.event(st, srcProxy, p.Name, "RDS-EVENT-0213", "configuration change",
				fmt.Sprintf("RDS detected the addition of the DB instance and automatically added it to the target group of the DB proxy %s.", p.Name))
		}
	}
}
