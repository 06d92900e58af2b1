//! One real Chromium, driven through WebDriver (Debian's chromium and
//! chromium-driver), shared by every console test: a WebDriver session
//! takes a second to start, so the tests take turns on one session and
//! each signs in with its own cookie.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

use crate::helpers::{in_ci, TestApp};

/// The shared browser and the folder its downloads land in.
pub struct Browser {
    pub client: Client,
    pub downloads: PathBuf,
    /// The watchdog shell that runs chromedriver; it ends with this process.
    _driver: std::process::Child,
}

static BROWSER: OnceLock<Option<Browser>> = OnceLock::new();
/// The tests take turns: one page at a time in the one window.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
}

/// Skips (outside CI, with the reason printed) or fails (in CI).
fn unavailable(why: String) -> Option<Browser> {
    if in_ci() {
        panic!("CI must run the console's browser tests, but {why}");
    }
    eprintln!("SKIPPED: the console's browser tests need Chromium and chromedriver: {why}");
    None
}

fn start() -> Option<Browser> {
    let Some(chromium) = which("chromium").or_else(|| which("chromium-browser")) else {
        return unavailable("no chromium on PATH (apt-get install chromium chromium-driver)".into());
    };
    let Some(driver) = which("chromedriver") else {
        return unavailable("no chromedriver on PATH (apt-get install chromium-driver)".into());
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    // chromedriver must not outlive this test process: a watchdog shell
    // stops it (and with it Chromium) once the process is gone.
    // chromedriver and the Chromium it starts run in a process group of
    // their own, which the watchdog ends as a whole.
    let script = format!(
        "setsid {} --port={port} --allowed-ips=127.0.0.1 >/dev/null 2>&1 & d=$!; \
         while kill -0 {} 2>/dev/null; do sleep 1; done; kill -TERM -$d; sleep 2; kill -KILL -$d 2>/dev/null",
        driver.display(),
        std::process::id()
    );
    let driver = std::process::Command::new("sh").args(["-c", &script]).spawn().expect("start chromedriver");
    let downloads = std::env::temp_dir().join(format!("govledger-console-downloads-{}", std::process::id()));
    std::fs::create_dir_all(&downloads).expect("downloads folder");
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": chromium.display().to_string(),
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1360,900", "--lang=en-US"],
            "prefs": {"download.default_directory": downloads.display().to_string(),
                      "download.prompt_for_download": false}
        }
    });
    let capabilities = capabilities.as_object().cloned().expect("object");
    // The session's connection lives on a runtime of its own, so that it
    // outlives each test's runtime.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let url = format!("http://127.0.0.1:{port}");
            let mut last = None;
            for _ in 0..50 {
                let mut builder = ClientBuilder::new(HttpConnector::new());
                match builder.capabilities(capabilities.clone()).connect(&url).await {
                    Ok(client) => {
                        let _ = tx.send(Ok(client));
                        std::future::pending::<()>().await;
                    }
                    Err(e) => last = Some(e.to_string()),
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            let _ = tx.send(Err(last.unwrap_or_default()));
        });
    });
    match rx.recv() {
        Ok(Ok(client)) => Some(Browser { client, downloads, _driver: driver }),
        Ok(Err(e)) => unavailable(format!("no WebDriver session: {e}")),
        Err(_) => unavailable("the WebDriver thread stopped".into()),
    }
}

/// The browser, with this test's turn held; `None` (skipped) without one.
pub async fn turn() -> Option<(tokio::sync::MutexGuard<'static, ()>, &'static Browser)> {
    let browser = tokio::task::spawn_blocking(|| BROWSER.get_or_init(start).as_ref()).await.expect("browser")?;
    let guard = TURN.lock().await;
    Some((guard, browser))
}

impl Browser {
    /// Opens `path` of `app`.
    pub async fn open(&self, app: &TestApp, path: &str) {
        self.client.goto(&app.url(path)).await.unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// Signs out of everything, then signs in to `app` with `token` through
    /// the sign-in form, as a person would.
    pub async fn sign_in(&self, app: &TestApp, token: &str) {
        self.open(app, "/ui/login").await;
        self.client.delete_all_cookies().await.expect("cookies");
        self.open(app, "/ui/login").await;
        let field = self.client.find(Locator::Css("input[name='token']")).await.expect("token field");
        field.send_keys(token).await.expect("type the token");
        self.follow("form[action='/ui/login'] button[type='submit']").await;
        let path = self.path().await;
        assert!(!path.starts_with("/ui/login"), "still on the sign-in page: {}", self.text("main").await);
    }

    /// The current page's path.
    pub async fn path(&self) -> String {
        self.client.current_url().await.expect("url").path().to_owned()
    }

    /// The text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(e) => panic!("no {css} on {}: {e}", self.path().await),
        }
    }

    /// Clicks the first element matching `css`.
    pub async fn click(&self, css: &str) {
        let element = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
        element.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Clicks the first element matching `css` and waits for the page it
    /// leads to (a click may return before the navigation starts).
    pub async fn follow(&self, css: &str) {
        let element = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
        self.follow_element(element).await;
    }

    /// Clicks `element` and waits for the page it leads to.
    pub async fn follow_element(&self, element: fantoccini::elements::Element) {
        self.eval("window.__left = false; window.addEventListener('pagehide', () => { window.__left = true; });").await;
        let before = self.client.current_url().await.expect("url");
        element.click().await.unwrap_or_else(|e| panic!("click: {e}"));
        for _ in 0..200 {
            let moved = self.client.current_url().await.is_ok_and(|u| u != before);
            let marker = self.client.execute("return window.__left === undefined", vec![]).await;
            if moved || marker.is_ok_and(|v| v == serde_json::json!(true)) {
                let ready = self.client.execute("return document.readyState", vec![]).await;
                if ready.is_ok_and(|v| v == "complete") {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no new page after the click, still at {before}");
    }

    /// Runs `script` in the page and returns its value.
    pub async fn eval(&self, script: &str) -> serde_json::Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        self.client.screenshot().await.expect("screenshot")
    }
}
