package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/rdslocal/rdslocal/api"
	"github.com/rdslocal/rdslocal/iamauth"
)

// MaxBodyBytes bounds an API request body; a larger one is answered 413.
const MaxBodyBytes = 10 << 20

// DefaultRegion is used when a request carries no SigV4 credential scope.
const DefaultRegion = "us-east-1"

// DefaultAccount is the account of every access key that is not 12 digits.
const DefaultAccount = "000000000000"

// request is what the gateway knows about an API request before dispatch.
type request struct {
	id        string
	json      bool   // JSON 1.1, else query protocol
	service   string // signing name, "" when unknown
	action    string
	region    string
	accessKey string
	form      url.Values
	body      []byte
}

// serveAPI is the handler for POST / and GET / (the AWS API).
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	req := &request{id: uuid.NewString(), region: DefaultRegion}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		// Requests the server makes itself (fixtures) log at debug level;
		// the fixture applier logs what they did.
		level := slog.LevelInfo
		if r.Context().Value(quietKey{}) != nil {
			level = slog.LevelDebug
		}
		s.log.Log(r.Context(), level, "request", "service", req.service, "action", req.action,
			"status", rec.status, "duration", time.Since(start).Round(time.Microsecond), "request_id", req.id)
	}()
	req.json = r.Method == http.MethodPost && r.Header.Get("X-Amz-Target") != ""

	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		s.fail(rec, req, nil, api.NewError(http.StatusBadRequest, "IncompleteBody", "reading the request body: %v", err))
		return
	}
	if len(body) > MaxBodyBytes {
		s.fail(rec, req, nil, api.NewError(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge",
			"Request body must be at most %d bytes", MaxBodyBytes))
		return
	}
	req.body = body
	if !req.json {
		if apiErr := req.parseForm(r); apiErr != nil {
			s.fail(rec, req, nil, apiErr)
			return
		}
	}
	req.readScope(r)
	svc, apiErr := s.route(r, req)
	if apiErr == nil && s.cfg.VerifySignatures {
		apiErr = s.verify(r, req)
	}
	if apiErr != nil {
		s.fail(rec, req, svc, apiErr)
		return
	}
	s.dispatch(rec, r, req, svc)
}

// parseForm reads the query-protocol parameters from the URL query and, for
// POST, the form body.
func (req *request) parseForm(r *http.Request) *api.Error {
	form, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return api.NewError(http.StatusNotFound, "MalformedQueryString", "The query string contains a syntax error: %v", err)
	}
	if r.Method == http.MethodPost && len(req.body) > 0 {
		ct := r.Header.Get("Content-Type")
		if ct != "" && !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
			return api.NewError(http.StatusBadRequest, "InvalidQueryParameter",
				"Unsupported Content-Type %q: the query protocol takes application/x-www-form-urlencoded", ct)
		}
		bodyForm, err := url.ParseQuery(string(req.body))
		if err != nil {
			return api.NewError(http.StatusNotFound, "MalformedQueryString", "The query string contains a syntax error: %v", err)
		}
		for k, v := range bodyForm {
			form[k] = append(form[k], v...)
		}
	}
	req.form = form
	return nil
}

// readScope takes service, region and access key from the SigV4 credential
// scope, in the Authorization header or a presigned X-Amz-Credential.
func (req *request) readScope(r *http.Request) {
	cred := ""
	if h := r.Header.Get("Authorization"); h != "" {
		if i := strings.Index(h, "Credential="); i >= 0 {
			cred = h[i+len("Credential="):]
			if j := strings.IndexAny(cred, ", "); j >= 0 {
				cred = cred[:j]
			}
		}
	} else if c := r.URL.Query().Get("X-Amz-Credential"); c != "" {
		cred = c
	} else if req.form != nil {
		cred = req.form.Get("X-Amz-Credential")
	}
	parts := strings.Split(cred, "/")
	if len(parts) == 5 && parts[4] == "aws4_request" {
		req.accessKey, req.region, req.service = parts[0], parts[2], parts[3]
	}
}

// route finds the service and the action of a request.
func (s *Server) route(r *http.Request, req *request) (*api.Service, *api.Error) {
	var svc *api.Service
	if req.json {
		target := r.Header.Get("X-Amz-Target")
		prefix, action, ok := strings.Cut(target, ".")
		req.action = action
		if req.service == "" {
			svc = s.byTarget[prefix]
		} else {
			svc = s.services[req.service]
		}
		if svc == nil || !ok || svc.Model.Metadata.Protocol != "json" || prefix != svc.Model.Metadata.TargetPrefix {
			return nil, api.NewError(http.StatusBadRequest, "UnknownOperationException", "Unknown operation %s", target)
		}
		if req.service == "" {
			req.service = svc.Name()
		}
		if _, ok := svc.Handlers[action]; !ok {
			return svc, api.NewError(http.StatusBadRequest, "UnknownOperationException", "Unknown operation %s", target)
		}
		return svc, nil
	}
	req.action = req.form.Get("Action")
	switch {
	case req.service != "":
		svc = s.services[req.service]
	case req.form.Get("Version") != "":
		svc = s.byVersion[req.form.Get("Version")]
	default:
		for _, cand := range s.services {
			if _, ok := cand.Handlers[req.action]; ok && cand.Model.Metadata.Protocol == "query" {
				svc = cand
			}
		}
	}
	if svc == nil || svc.Model.Metadata.Protocol != "query" {
		name := req.service
		if name == "" {
			name = "this endpoint"
		}
		return nil, api.NewError(http.StatusBadRequest, "InvalidAction", "The action %s is not valid for %s: rdslocal serves rds, iam and sts on the query protocol", req.action, name)
	}
	req.service = svc.Name()
	if req.action == "" {
		return svc, api.NewError(http.StatusBadRequest, "MissingAction", "The request must contain the parameter Action")
	}
	if _, ok := svc.Handlers[req.action]; !ok {
		return svc, api.NewError(http.StatusBadRequest, "InvalidAction", "The action %s is not valid for this web service.", req.action)
	}
	return svc, nil
}

// dispatch validates the input, runs the handler and renders its outcome.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, req *request, svc *api.Service) {
	var input []byte
	var err error
	if req.json {
		input, err = svc.Model.DecodeJSON(req.action, req.body)
	} else {
		input, err = svc.Model.DecodeQuery(req.action, req.form)
	}
	if err != nil {
		s.fail(w, req, svc, api.AsError(err))
		return
	}
	call := api.NewCall(r.Context(), input)
	call.Service, call.Action, call.Region, call.AccessKey, call.RequestID = svc.Name(), req.action, req.region, req.accessKey, req.id
	call.Account = s.accountOf(req.accessKey)

	result, err := s.invoke(svc, call)
	if err == nil && svc.State != nil && !svc.IsReadOnly(req.action) {
		err = s.save(svc)
	}
	if err != nil {
		s.fail(w, req, svc, api.AsError(err))
		return
	}
	if req.json {
		api.WriteJSONResult(w, req.id, result)
	} else {
		api.WriteQueryResult(w, svc.Model.Metadata.XMLNamespace, req.action, req.id, result)
	}
}

// invoke runs a handler, turning a panic into InternalFailure.
func (s *Server) invoke(svc *api.Service, call *api.Call) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("handler panic", "service", call.Service, "action", call.Action, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			result, err = nil, api.InternalFailure("rdslocal hit an internal error; see its log")
		}
	}()
	return svc.Handlers[call.Action](call)
}

// fail renders err in the request's protocol.
func (s *Server) fail(w http.ResponseWriter, req *request, svc *api.Service, err *api.Error) {
	if err.Status >= 500 {
		s.log.Error("request failed", "service", req.service, "action", req.action, "code", err.Code, "message", err.Message)
	}
	if req.json {
		api.WriteJSONError(w, req.id, err)
		return
	}
	ns := "http://rds.amazonaws.com/doc/2014-10-31/"
	if svc != nil {
		ns = svc.Model.Metadata.XMLNamespace
	}
	api.WriteQueryError(w, ns, req.id, err)
}

// accountOf maps an access key to its account: a key created through IAM
// or STS belongs to its account, otherwise AccountOf decides.
func (s *Server) accountOf(accessKey string) string {
	if cred, ok := s.iam.LookupAccessKey(accessKey); ok && cred.Account != "" {
		return cred.Account
	}
	return AccountOf(accessKey)
}

// AccountOf maps an access key to its account: a 12-digit key is the
// account itself (LocalStack's convention), anything else 000000000000.
func AccountOf(accessKey string) string {
	if len(accessKey) == 12 && strings.Trim(accessKey, "0123456789") == "" {
		return accessKey
	}
	return DefaultAccount
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// verify recomputes the request's SigV4 signature (--verify-signatures) and
// answers a failure with the code AWS uses in the request's protocol.
func (s *Server) verify(r *http.Request, req *request) *api.Error {
	_, err := iamauth.Authenticate(r, req.body, s.iam, time.Now())
	if err == nil {
		return nil
	}
	s.log.Info("request signature rejected", "service", req.service, "action", req.action, "reason", err.Error())
	type codes struct {
		query, json string
		status      int // of the query error; JSON errors are 400
		msg         string
	}
	c := codes{"IncompleteSignature", "IncompleteSignatureException", http.StatusForbidden, "The request signature is incomplete or malformed."}
	switch {
	case errors.Is(err, iamauth.ErrMissingAuth):
		c = codes{"MissingAuthenticationToken", "MissingAuthenticationTokenException", http.StatusForbidden, "Request is missing Authentication Token"}
	case errors.Is(err, iamauth.ErrUnknownKey), errors.Is(err, iamauth.ErrInvalidSessionToken):
		c = codes{"InvalidClientTokenId", "UnrecognizedClientException", http.StatusForbidden, "The security token included in the request is invalid."}
	case errors.Is(err, iamauth.ErrSignatureMismatch):
		c = codes{"SignatureDoesNotMatch", "InvalidSignatureException", http.StatusForbidden,
			"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."}
	case errors.Is(err, iamauth.ErrCredentialsExpired):
		c = codes{"ExpiredToken", "ExpiredTokenException", http.StatusForbidden, "The security token included in the request is expired"}
	case errors.Is(err, iamauth.ErrExpired), errors.Is(err, iamauth.ErrNotYetValid):
		c = codes{"RequestExpired", "InvalidSignatureException", http.StatusForbidden, "Signature expired or not yet valid: " + err.Error()}
	}
	if req.json {
		return api.NewError(http.StatusBadRequest, c.json, "%s", c.msg)
	}
	return api.NewError(c.status, c.query, "%s", c.msg)
}
