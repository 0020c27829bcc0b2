package caddyirma

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-irma/caddy-irma/caddyirma/internal/testkit/caddytest"
)

// TestResultPoster: a result is posted once, to the URL with a "/" at the
// end of its path, with its content type; a redirect, an error status, a
// receiver that is down or one that hangs past the timeout is a failure,
// and the URL is not in the error; a result beyond the backlog is not
// posted at all.
func TestResultPoster(t *testing.T) {
	type post struct{ path, ctype, body string }
	posts := make(chan post, 10)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		posts <- post{r.URL.Path, r.Header.Get("Content-Type"), string(b)}
		switch r.URL.Path {
		case "/redirect/":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case "/broken/":
			http.Error(w, "broken", http.StatusInternalServerError)
		case "/hang/":
			<-r.Context().Done()
		case "/hold/":
			<-release
		case "/huge/":
			_, _ = io.Copy(w, io.LimitReader(zeros{}, 10<<20))
		}
	}))
	defer srv.Close()
	defer close(release)
	p := newResultPoster(1, 1, 200*time.Millisecond, time.Minute)
	ctx := context.Background()

	if err := p.post(ctx, srv.URL+"/cb", bodyOf("a.b.c", "text/plain; charset=UTF-8")); err != nil {
		t.Fatalf("a working receiver: %v", err)
	}
	if got := <-posts; got != (post{"/cb/", "text/plain; charset=UTF-8", "a.b.c"}) {
		t.Errorf("posted %+v", got)
	}
	if err := p.post(ctx, srv.URL+"/huge", bodyOf("{}", "application/json")); err != nil {
		t.Errorf("a receiver that answers at length: %v", err)
	}
	<-posts
	for _, path := range []string{"/redirect", "/broken", "/hang"} {
		err := p.post(ctx, strings.Replace(srv.URL, "//", "//user:s3cret@", 1)+path, bodyOf("{}", "application/json"))
		if err == nil {
			t.Errorf("%s: no error", path)
		} else if err = redactURL(err); strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error names the URL: %v", path, err)
		}
		if got := <-posts; got.path != path+"/" {
			t.Errorf("%s: posted to %s", path, got.path)
		}
	}
	if len(posts) != 0 {
		t.Error("a redirect was followed")
	}
	if err := redactURL(p.post(ctx, "http://user:s3cret@"+caddytest.RefusedAddr(t)+"/cb", bodyOf("", "application/json"))); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a receiver that is down: %v", err)
	}

	// One posting (holding the only slot), one waiting: the third is dropped at once.
	slow := newResultPoster(1, 1, time.Minute, time.Minute)
	done := make(chan error, 2)
	go func() { done <- slow.post(ctx, srv.URL+"/hold", bodyOf("", "application/json")) }()
	<-posts              // the first holds the slot
	var made atomic.Bool // the waiting result's body is made (signed) when its turn comes
	go func() {
		done <- slow.post(ctx, srv.URL+"/cb", func() ([]byte, string, error) {
			made.Store(true)
			return nil, "application/json", nil
		})
	}()
	for slow.waiting.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	if err := slow.post(ctx, srv.URL+"/cb", bodyOf("", "application/json")); !errors.Is(err, errResultBacklog) {
		t.Errorf("beyond the backlog: %v", err)
	}
	if made.Load() {
		t.Error("the waiting result's body was made before its turn")
	}
	release <- struct{}{}
	for range 2 {
		if err := <-done; err != nil {
			t.Errorf("a post within the bounds: %v", err)
		}
	}
	// A result that cannot have its turn within maxWait is not posted.
	impatient := newResultPoster(1, 5, time.Minute, 50*time.Millisecond)
	go func() { done <- impatient.post(ctx, srv.URL+"/hold", bodyOf("", "application/json")) }()
	for got := <-posts; got.path != "/hold/"; got = <-posts { // it holds the slot
	}
	if err := impatient.post(ctx, srv.URL+"/cb", bodyOf("", "application/json")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a result that waited too long: %v", err)
	}
	release <- struct{}{}
	if err := <-done; err != nil {
		t.Errorf("the post that held the slot: %v", err)
	}
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

// bodyOf is a result body, made when its turn comes.
func bodyOf(body, contentType string) func() ([]byte, string, error) {
	return func() ([]byte, string, error) { return []byte(body), contentType, nil }
}
