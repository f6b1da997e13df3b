package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/stepgate/stepgate/demo"
	"github.com/stepgate/stepgate/devidp"
)

const chromiumPath = "/usr/bin/chromium" // Debian's package "chromium"

// newChromium starts a headless Chromium with a fresh profile and returns
// a context for chromedp actions. Without Chromium the test fails under
// CI=true (the CI script installs it) and is skipped elsewhere.
func newChromium(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("browser tests need %s (CI=true): install it with apt-get install -y chromium: %v", chromiumPath, err)
		}
		t.Skipf("browser tests skipped: %s not found; install it with: apt-get install -y chromium", chromiumPath)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1024, 768),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	// The first action starts the browser, which lives as long as that
	// action's context: so no timeout on this one, only on what follows.
	if err := chromedp.Do(browserCtx); err != nil {
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	ctx, cancelTimeout := context.WithTimeout(browserCtx, 2*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelBrowser()
		cancelAlloc()
	})
	return ctx
}

// step runs actions in order and fails the test, naming the step and
// showing where the browser is, when one fails.
func step(t *testing.T, ctx context.Context, name string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		failAt(t, ctx, name, err)
	}
}

// get runs one action that returns a value.
func get[T any](t *testing.T, ctx context.Context, name string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		failAt(t, ctx, name, err)
	}
	return v
}

func failAt(t *testing.T, ctx context.Context, name string, err error) {
	t.Helper()
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(short, chromedp.Location())
	body, _ := chromedp.Run(short, chromedp.Text(chromedp.CSS("body")))
	t.Fatalf("%s: %v\n  at %s\n  page text: %.600s", name, err, loc, body)
}

func text(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	return get(t, ctx, "read #"+id, chromedp.Text(chromedp.ID(id)))
}

// screenshot saves a full-page PNG into the test's temp dir and, when
// STEPGATE_SCREENSHOTS=1, into docs/ for the README.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png := get(t, ctx, "screenshot "+name, chromedp.FullScreenshot(100)) // quality 100 = PNG
	if err := os.WriteFile(filepath.Join(t.TempDir(), name), png, 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("STEPGATE_SCREENSHOTS") == "1" {
		if err := os.MkdirAll(filepath.Join("..", "docs"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "docs", name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// wrongCode returns a six-digit code that the provider does not accept now
// (it accepts the previous, current and next 30 s window).
func wrongCode(t *testing.T, secret string) string {
	t.Helper()
	now := time.Now()
	var valid []string
	for _, d := range []time.Duration{-time.Minute, -30 * time.Second, 0, 30 * time.Second, time.Minute} {
		c, err := totp.GenerateCode(secret, now.Add(d))
		if err != nil {
			t.Fatal(err)
		}
		valid = append(valid, c)
	}
	for _, c := range []string{"000000", "111111", "222222"} {
		if !slices.Contains(valid, c) {
			return c
		}
	}
	t.Fatal("no wrong code found")
	return ""
}

func currentCode(t *testing.T, secret string) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// exists reports whether sel matches an element on the current page.
func exists(t *testing.T, ctx context.Context, sel string) bool {
	t.Helper()
	return get(t, ctx, "look for "+sel, chromedp.Evaluate[bool](`document.querySelector(`+strconv.Quote(sel)+`) !== null`))
}

// TestBrowserStepUp walks the demo as a person would, in real Chromium:
// password login, account page, a transfer held for the one-time code, a
// wrong code, the right code, the confirm page and Confirm (one transfer),
// a reload and a replayed Confirm (410), the next transfer asking again and
// cancelled, the admin page asking again after its max_age, and logout.
func TestBrowserStepUp(t *testing.T) {
	ctx := newChromium(t)
	td := startBrowserDemo(t)
	alice := td.user(t, "alice")
	gw := td.GatewayURL

	// 1. Password-only login on the account page.
	step(t, ctx, "open the account page", chromedp.Navigate(gw+"/account"), chromedp.WaitVisible(chromedp.ID("password")))
	step(t, ctx, "type the credentials",
		chromedp.SendKeys(chromedp.ID("username"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), alice.Password))
	screenshot(t, ctx, "demo-login.png")
	step(t, ctx, "sign in",
		chromedp.Click(chromedp.ID("sign-in")),
		chromedp.WaitVisible(chromedp.ID("balance")))
	identity := text(t, ctx, "identity")
	if !strings.Contains(identity, "alice@bank.example") || !strings.Contains(identity, "pwd") || strings.Contains(identity, devidp.ACRMultiFactor) {
		t.Fatalf("account page identity after a password login: %q; want alice, amr pwd, no multi-factor acr", identity)
	}

	// 2. A transfer is held: filled in once, it goes to the step-up (the
	// provider shows the transaction it is asked to approve), then to the
	// gateway's confirm page, and only Confirm sends it.
	step(t, ctx, "open transfers and send",
		chromedp.Click(chromedp.ID("nav-transfers")),
		chromedp.WaitVisible(chromedp.ID("transfer-form")),
		chromedp.SetValue(chromedp.ID("amount"), "42.00"),
		chromedp.Click(chromedp.ID("send")),
		chromedp.WaitVisible(chromedp.CSS("#username, #code")))
	if n := len(td.App.Transfers()); n != 0 {
		t.Fatalf("%d transfers reached the app before the step-up; want 0", n)
	}
	if exists(t, ctx, "#username") { // the SSO session normally spares this
		step(t, ctx, "password again",
			chromedp.SendKeys(chromedp.ID("username"), "alice"),
			chromedp.SendKeys(chromedp.ID("password"), alice.Password),
			chromedp.Click(chromedp.ID("sign-in")),
			chromedp.WaitVisible(chromedp.ID("code")))
	}
	if body := get(t, ctx, "read the code page", chromedp.Text(chromedp.CSS("body"))); !strings.Contains(body, "Send 42.00 EUR to DE89370400440532013000") {
		t.Errorf("the provider's code page does not show the transaction: %q", body)
	}
	screenshot(t, ctx, "demo-stepup-code.png")

	// 3. A wrong code: an error, and nothing reaches the app.
	step(t, ctx, "enter a wrong code",
		chromedp.SendKeys(chromedp.ID("code"), wrongCode(t, alice.TOTPSecret)),
		chromedp.Click(chromedp.ID("verify")),
		chromedp.WaitVisible(chromedp.ID("error")))
	errText := text(t, ctx, "error")
	if !strings.Contains(errText, "Wrong code") {
		t.Errorf("wrong code error %q; want it to say Wrong code", errText)
	}
	if n := len(td.App.Transfers()); n != 0 {
		t.Fatalf("%d transfers reached the app after a wrong code; want 0", n)
	}

	// 4. The right code leads to the confirm page, which shows exactly
	// what will be sent; Confirm sends it, once.
	step(t, ctx, "enter the code",
		chromedp.SetValue(chromedp.ID("code"), currentCode(t, alice.TOTPSecret)),
		chromedp.Click(chromedp.ID("verify")),
		chromedp.WaitVisible(chromedp.ID("stepgate-held")))
	held := text(t, ctx, "stepgate-held")
	for _, want := range []string{"42.00", "EUR", "Bob", "DE89370400440532013000", "POST /api/transfers"} {
		if !strings.Contains(held, want) {
			t.Errorf("confirm page shows %q; want it to show %q", held, want)
		}
	}
	screenshot(t, ctx, "demo-confirm.png")
	confirmURL := get(t, ctx, "read the confirm URL", chromedp.Location())
	csrf := get(t, ctx, "read the CSRF token", chromedp.Value(chromedp.CSS(`input[name="csrf"]`)))
	step(t, ctx, "confirm", chromedp.Click(chromedp.ID("stepgate-confirm")), chromedp.WaitVisible(chromedp.ID("transfer-done")))
	done := text(t, ctx, "transfer-done")
	identity = text(t, ctx, "identity")
	screenshot(t, ctx, "demo-transfer-done.png")
	if !strings.Contains(done, "42.00 EUR") || !strings.Contains(identity, devidp.ACRMultiFactor) || !strings.Contains(identity, "pwd,otp,mfa") {
		t.Errorf("done page %q, identity %q; want 42.00 EUR with multi-factor acr and amr", done, identity)
	}
	got := td.App.Transfers()
	if len(got) != 1 || got[0].Subject != "alice" || got[0].Amount != "42.00" || got[0].To != "Bob" ||
		got[0].IBAN != "DE89370400440532013000" || got[0].ACR != devidp.ACRMultiFactor || got[0].Confirmation == "" {
		t.Fatalf("app recorded %+v; want one confirmed multi-factor transfer of 42.00 to Bob by alice", got)
	}

	// 5. The confirm page again, and the same Confirm POST replayed from
	// the browser: 410, and still one transfer.
	step(t, ctx, "reload the confirm page", chromedp.Navigate(confirmURL), chromedp.WaitVisible(chromedp.CSS("h1")))
	if h1 := get(t, ctx, "read the heading", chromedp.Text(chromedp.CSS("h1"))); h1 != "Gone" {
		t.Errorf("reloaded confirm page says %q; want Gone (410)", h1)
	}
	id := confirmURL[strings.Index(confirmURL, "id=")+3:]
	// The gateway's pages allow no scripts or fetches (CSP), so the replay
	// is the same form the confirm page had, rebuilt and submitted.
	replay := `(() => { const f = document.createElement("form"); f.method = "post"; f.action = "/.stepgate/confirm";
		for (const [k, v] of Object.entries({id: "` + id + `", csrf: "` + csrf + `", action: "confirm"})) {
			const i = document.createElement("input"); i.type = "hidden"; i.name = k; i.value = v; f.appendChild(i) }
		const m = document.createElement("p"); m.id = "before-replay"; document.body.appendChild(m);
		document.body.appendChild(f); f.submit(); return true })()`
	step(t, ctx, "replay the Confirm POST",
		chromedp.Evaluate[chromedp.Void](replay),
		chromedp.WaitNotPresent(chromedp.ID("before-replay")),
		chromedp.WaitVisible(chromedp.CSS("h1")))
	if h1 := get(t, ctx, "read the heading", chromedp.Text(chromedp.CSS("h1"))); h1 != "Gone" {
		t.Errorf("replayed Confirm POST says %q; want Gone (410)", h1)
	}
	if n := len(td.App.Transfers()); n != 1 {
		t.Errorf("%d transfers after a reload and a replay; want 1", n)
	}

	// 6. The level admits one transfer per code: the next one asks again,
	// and Cancel on its confirm page sends nothing.
	step(t, ctx, "second transfer",
		chromedp.Navigate(gw+"/transfers"),
		chromedp.WaitVisible(chromedp.ID("transfer-form")),
		chromedp.Click(chromedp.ID("send")),
		chromedp.WaitVisible(chromedp.ID("code")),
		chromedp.SetValue(chromedp.ID("code"), currentCode(t, alice.TOTPSecret)),
		chromedp.Click(chromedp.ID("verify")),
		chromedp.WaitVisible(chromedp.ID("stepgate-held")),
		chromedp.Click(chromedp.ID("stepgate-cancel")),
		chromedp.WaitNotPresent(chromedp.ID("stepgate-held")),
		chromedp.WaitVisible(chromedp.CSS("h1")))
	if h1 := get(t, ctx, "read the heading", chromedp.Text(chromedp.CSS("h1"))); h1 != "Cancelled" {
		t.Errorf("after Cancel the page says %q; want Cancelled", h1)
	}
	if n := len(td.App.Transfers()); n != 1 {
		t.Errorf("%d transfers after a cancel; want still 1", n)
	}

	// 7. The admin page (mfa_recent, max_age 2m) is open right after the
	// step-up, and asks again, password first (prompt=login), once 2
	// minutes have passed on the gateway's clock.
	step(t, ctx, "admin within max_age", chromedp.Navigate(gw+"/admin"), chromedp.WaitVisible(chromedp.ID("all-transfers")))
	td.advance(3 * time.Minute)
	step(t, ctx, "admin after max_age", chromedp.Navigate(gw+"/admin"), chromedp.WaitVisible(chromedp.ID("password")))
	reqs := td.IDP.Requests()
	if last := reqs[len(reqs)-1]; !slices.Contains(last.Prompt, "login") || !slices.Contains(last.ACRValues, devidp.ACRMultiFactor) {
		t.Errorf("admin step-up asked %+v; want prompt=login and the multi-factor acr_values", last)
	}

	// 8. Logout ends the gateway session and the provider's: the account
	// page asks for the password again.
	step(t, ctx, "logout",
		chromedp.Navigate(gw+"/account"),
		chromedp.WaitVisible(chromedp.ID("balance")), // the abandoned admin step-up left the session intact
		chromedp.Click(chromedp.ID("logout")),
		chromedp.WaitVisible(chromedp.ID("password")),
		chromedp.Navigate(gw+"/account"),
		chromedp.WaitVisible(chromedp.ID("password")))
}

// startBrowserDemo is startTestDemo with the one-time code shown on the code
// page, as `stepgate demo` shows it, for the screenshots.
func startBrowserDemo(t *testing.T) *testDemo {
	return startTestDemoWith(t, func(o *demo.Options) { o.ShowCodes = true })
}
