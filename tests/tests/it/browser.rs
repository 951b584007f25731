//! Headless Chromium — the distribution's package, never a downloaded build — driven over the
//! DevTools protocol for the dashboard's tests: open a page, evaluate JavaScript in it, wait
//! for what it shows, type, click, take screenshots.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chromiumoxide::browser::{Browser as Cdp, BrowserConfig};
use chromiumoxide::handler::viewport::Viewport;
use chromiumoxide::page::ScreenshotParams;
use serde_json::Value;
use tokio_stream::StreamExt;

/// The system Chromium: `ORCHESTRATOR_TEST_CHROMIUM`, else `chromium` on PATH.
fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("ORCHESTRATOR_TEST_CHROMIUM") {
        return p.into();
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .flat_map(|d| [d.join("chromium"), d.join("chromium-browser")])
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the dashboard's tests need Chromium: install the distribution's `chromium` \
                 package (.ci/test does), or set ORCHESTRATOR_TEST_CHROMIUM"
            )
        })
}

pub struct Browser {
    rt: tokio::runtime::Runtime,
    cdp: Option<Cdp>,
}

impl Browser {
    /// Chromium at 1280×800, its profile in `dir`.
    pub fn launch(dir: &Path) -> Browser {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let config = BrowserConfig::builder()
            .chrome_executable(chromium())
            .user_data_dir(dir.join("chromium-profile"))
            .no_sandbox()
            .window_size(1280, 800)
            .viewport(Viewport {
                width: 1280,
                height: 800,
                ..Viewport::default()
            })
            // This machine has no network: nothing but the page's own loopback traffic.
            .args([
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ])
            .launch_timeout(Duration::from_secs(60))
            .build()
            .expect("browser config");
        let cdp = rt.block_on(async {
            let (cdp, mut handler) = Cdp::launch(config).await.expect("launch chromium");
            tokio::spawn(async move { while handler.next().await.is_some() {} });
            cdp
        });
        Browser { rt, cdp: Some(cdp) }
    }

    pub fn open(&self, url: &str) -> Page<'_> {
        let cdp = self.cdp.as_ref().expect("browser");
        let page = self
            .rt
            .block_on(cdp.new_page(url))
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
        Page { b: self, page }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(mut cdp) = self.cdp.take() {
            self.rt.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(5), cdp.close()).await;
                let _ = cdp.kill().await;
            });
        }
    }
}

pub struct Page<'a> {
    b: &'a Browser,
    page: chromiumoxide::Page,
}

impl Page<'_> {
    /// The value of `js` (an expression; a promise is awaited).
    pub fn eval(&self, js: &str) -> Value {
        self.b
            .rt
            .block_on(self.page.evaluate(js))
            .unwrap_or_else(|e| panic!("evaluate {js}: {e}"))
            .value()
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Waits until `js` is truthy, and returns its value; on timeout panics with `what` and the
    /// page's text.
    pub fn wait(&self, what: &str, js: &str) -> Value {
        let found = orchestrator_tests::wait::polled(orchestrator_tests::wait::DEADLINE, || {
            let v = self.eval(js);
            let truthy = !matches!(v, Value::Null | Value::Bool(false)) && v != 0 && v != "";
            truthy.then_some(v)
        });
        found.unwrap_or_else(|| {
            panic!(
                "timed out waiting for {what} ({js}); the page shows:\n{}",
                self.eval("document.body.innerText")
            )
        })
    }

    /// Clicks the element `selector` and types `text` as keystrokes.
    pub fn type_into(&self, selector: &str, text: &str) {
        self.b.rt.block_on(async {
            let e = self.page.find_element(selector).await.expect(selector);
            e.click().await.expect("click");
            e.type_str(text).await.expect("type");
        });
    }

    pub fn click(&self, selector: &str) {
        self.b.rt.block_on(async {
            let e = self.page.find_element(selector).await.expect(selector);
            e.click().await.expect("click");
        });
    }

    pub fn goto(&self, url: &str) {
        self.b
            .rt
            .block_on(self.page.goto(url))
            .unwrap_or_else(|e| panic!("go to {url}: {e}"));
    }

    /// The viewport (1280×800) as a PNG at `path`.
    pub fn screenshot(&self, path: &Path) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        self.b
            .rt
            .block_on(
                self.page
                    .save_screenshot(ScreenshotParams::builder().build(), path),
            )
            .unwrap_or_else(|e| panic!("screenshot {}: {e}", path.display()));
    }
}
