package api

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ISOTime formats t as the query protocol's timestamps
// (2026-11-25T19:12:10.701Z).
func ISOTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// EpochTime is a timestamp rendered as JSON 1.1 does: epoch seconds, a number.
type EpochTime time.Time

// MarshalJSON renders epoch seconds with millisecond precision.
func (t EpochTime) MarshalJSON() ([]byte, error) {
	ms := time.Time(t).UnixMilli()
	return []byte(strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64)), nil
}

// UnmarshalJSON reads epoch seconds.
func (t *EpochTime) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return err
	}
	*t = EpochTime(time.UnixMilli(int64(f * 1000)).UTC())
	return nil
}

// Epoch returns a pointer to t as an EpochTime, for optional members.
func Epoch(t time.Time) *EpochTime {
	e := EpochTime(t)
	return &e
}

// List is a query-protocol list whose items are <member> elements. Unlike a
// plain slice it renders an empty list as an empty element (<DBProxies/>),
// which the SDKs read as an empty list rather than an absent one; tag the
// field omitempty where AWS omits it.
type List[T any] []T

// MarshalXML renders <Name><member>…</member>…</Name>.
func (l List[T]) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	return MarshalItems(e, start, "member", l)
}

// MarshalItems renders items as children named item of the element start;
// types whose lists use custom item names (DBInstance, Tag…) call it from
// their own MarshalXML.
func MarshalItems[T any](e *xml.Encoder, start xml.StartElement, item string, items []T) error {
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	for i := range items {
		if err := e.EncodeElement(items[i], xml.StartElement{Name: xml.Name{Local: item}}); err != nil {
			return err
		}
	}
	return e.EncodeToken(start.End())
}

// WriteQueryResult renders a query-protocol success: <ActionResponse
// xmlns=ns><ActionResult>result</ActionResult><ResponseMetadata>….
func WriteQueryResult(w http.ResponseWriter, ns, action, requestID string, result any) {
	var b strings.Builder
	b.WriteString(xml.Header)
	b.WriteString("<" + action + "Response xmlns=\"" + ns + "\">")
	if result != nil {
		out, err := marshalResult(action+"Result", result)
		if err != nil {
			WriteQueryError(w, ns, requestID, InternalFailure("encoding response: "+err.Error()))
			return
		}
		b.Write(out)
	}
	b.WriteString("<ResponseMetadata><RequestId>" + requestID + "</RequestId></ResponseMetadata>")
	b.WriteString("</" + action + "Response>")
	h := w.Header()
	h.Set("Content-Type", "text/xml")
	h.Set("x-amzn-RequestId", requestID)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(b.String()))
}

func marshalResult(name string, v any) ([]byte, error) {
	var b strings.Builder
	e := xml.NewEncoder(&b)
	if err := e.EncodeElement(v, xml.StartElement{Name: xml.Name{Local: name}}); err != nil {
		return nil, err
	}
	if err := e.Flush(); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

// WriteQueryError renders a query-protocol error envelope with the error's
// HTTP status.
func WriteQueryError(w http.ResponseWriter, ns, requestID string, err *Error) {
	kind := "Sender"
	if err.Receiver {
		kind = "Receiver"
	}
	var b strings.Builder
	b.WriteString(xml.Header)
	b.WriteString("<ErrorResponse xmlns=\"" + ns + "\"><Error><Type>" + kind + "</Type><Code>")
	_ = xml.EscapeText(&b, []byte(err.Code))
	b.WriteString("</Code><Message>")
	_ = xml.EscapeText(&b, []byte(err.Message))
	b.WriteString("</Message></Error><RequestId>" + requestID + "</RequestId></ErrorResponse>")
	h := w.Header()
	h.Set("Content-Type", "text/xml")
	h.Set("x-amzn-RequestId", requestID)
	w.WriteHeader(err.Status)
	_, _ = w.Write([]byte(b.String()))
}

// WriteJSONResult renders a JSON 1.1 success; a nil result is {}.
func WriteJSONResult(w http.ResponseWriter, requestID string, result any) {
	body := []byte("{}")
	if result != nil {
		b, err := json.Marshal(result)
		if err != nil {
			WriteJSONError(w, requestID, InternalFailure("encoding response: "+err.Error()))
			return
		}
		body = b
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-amz-json-1.1")
	h.Set("x-amzn-RequestId", requestID)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// WriteJSONError renders a JSON 1.1 error: the X-Amzn-ErrorType header and
// {"__type": code, "message": text}. The message is never null: the Go SDK
// panics on a null message.
func WriteJSONError(w http.ResponseWriter, requestID string, err *Error) {
	body, _ := json.Marshal(map[string]string{"__type": err.Code, "message": err.Message})
	h := w.Header()
	h.Set("Content-Type", "application/x-amz-json-1.1")
	h.Set("x-amzn-RequestId", requestID)
	h.Set("X-Amzn-ErrorType", err.Code)
	w.WriteHeader(err.Status)
	_, _ = w.Write(body)
}

// AsError converts any error into an *Error: an *Error unchanged, anything
// else an InternalFailure.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return InternalFailure(err.Error())
}
