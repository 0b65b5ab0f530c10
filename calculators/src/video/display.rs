//! `DisplaySinkCalculator`: shows frames in a desktop window.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use mediagraph_framework::prelude::*;
use opencv::core::Mat;
use opencv::highgui;
use serde::Deserialize;

use crate::image::ImageFrame;

/// Shows frames in an OpenCV (highgui) window, e.g. for the camera demo (ours).
///
/// * Input streams: `IMAGE` ([`ImageFrame`]).
/// * Options ([`DisplaySinkCalculatorOptions`]): `window_name` (default `"mediagraph"`).
///
/// The window lives on a thread of its own (GUI toolkits want one thread), which also polls the
/// keyboard: `q` or Esc in the window makes the next `process` return [`Flow::Stop`], which
/// stops the graph's sources. The display never slows the graph down: a frame that arrives
/// while the previous one is still being shown is dropped. Without a display (`DISPLAY` and
/// `WAYLAND_DISPLAY` unset on Linux) `open` fails with a clear error instead of letting the
/// toolkit abort the process.
///
/// ```yaml
/// - calculator: DisplaySinkCalculator
///   input_stream: ["IMAGE:annotated"]
///   options: {window_name: "camera"}
/// ```
pub struct DisplaySinkCalculator {
    window_name: String,
    window: Option<Window>,
}

/// Options of [`DisplaySinkCalculator`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DisplaySinkCalculatorOptions {
    /// Title of the window.
    pub window_name: String,
}

impl Default for DisplaySinkCalculatorOptions {
    fn default() -> Self {
        DisplaySinkCalculatorOptions {
            window_name: "mediagraph".into(),
        }
    }
}

const IMAGE: Input<ImageFrame> = Input::new("IMAGE");

/// The window thread and what it reports.
struct Window {
    frames: Option<SyncSender<Mat>>,
    stop_requested: Arc<AtomicBool>,
    error: Arc<Mutex<Option<String>>>,
    thread: Option<JoinHandle<()>>,
}

/// Why no window can be shown, if that is known up front.
fn missing_display() -> Option<&'static str> {
    if cfg!(target_os = "linux")
        && std::env::var_os("DISPLAY").is_none()
        && std::env::var_os("WAYLAND_DISPLAY").is_none()
    {
        Some("no display: DISPLAY and WAYLAND_DISPLAY are not set (DisplaySinkCalculator needs a desktop session)")
    } else {
        None
    }
}

fn window_loop(
    name: String,
    frames: Receiver<Mat>,
    stop_requested: Arc<AtomicBool>,
    error: Arc<Mutex<Option<String>>>,
) {
    let fail = |e: opencv::Error| {
        if let Ok(mut slot) = error.lock() {
            slot.get_or_insert_with(|| format!("window \"{name}\": {e}"));
        }
    };
    if let Err(e) = highgui::named_window(&name, highgui::WINDOW_AUTOSIZE) {
        fail(e);
        return;
    }
    loop {
        match frames.recv_timeout(Duration::from_millis(20)) {
            Ok(frame) => {
                if let Err(e) = highgui::imshow(&name, &frame) {
                    fail(e);
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        match highgui::wait_key(1) {
            Ok(k) if k == i32::from(b'q') || k == 27 => {
                stop_requested.store(true, Ordering::SeqCst)
            }
            Ok(_) => {}
            Err(e) => {
                fail(e);
                break;
            }
        }
    }
    let _ = highgui::destroy_window(&name);
    let _ = highgui::wait_key(1);
}

impl Calculator for DisplaySinkCalculator {
    type Options = DisplaySinkCalculatorOptions;

    fn contract(cc: &mut Contract, _: &Self::Options) -> Result<()> {
        cc.declare(&[&IMAGE])
    }

    fn create(options: &Self::Options) -> Result<Self> {
        Ok(DisplaySinkCalculator {
            window_name: options.window_name.clone(),
            window: None,
        })
    }

    fn open(&mut self, _cx: &mut CalculatorContext) -> Result<()> {
        if let Some(why) = missing_display() {
            bail!("{why}");
        }
        let (tx, rx) = mpsc::sync_channel::<Mat>(1);
        let stop_requested = Arc::new(AtomicBool::new(false));
        let error = Arc::new(Mutex::new(None));
        let thread = std::thread::Builder::new()
            .name("display".into())
            .spawn({
                let (name, stop, error) = (
                    self.window_name.clone(),
                    stop_requested.clone(),
                    error.clone(),
                );
                move || window_loop(name, rx, stop, error)
            })
            .map_err(|e| Error::msg(format!("cannot start the display thread: {e}")))?;
        self.window = Some(Window {
            frames: Some(tx),
            stop_requested,
            error,
            thread: Some(thread),
        });
        Ok(())
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let Some(w) = self.window.as_mut() else {
            return Ok(Flow::Continue);
        };
        if let Some(e) = w.error.lock().ok().and_then(|mut e| e.take()) {
            bail!("{e}");
        }
        if w.stop_requested.load(Ordering::SeqCst) {
            return Ok(Flow::Stop);
        }
        if let (Some(frame), Some(tx)) = (cx.input(&IMAGE).get()?, &w.frames) {
            match tx.try_send(frame.to_bgr_mat()?) {
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => bail!("the display window was closed"),
            }
        }
        Ok(Flow::Continue)
    }

    fn close(&mut self, _cx: &mut CalculatorContext) -> Result<()> {
        if let Some(mut w) = self.window.take() {
            w.frames = None;
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
        Ok(())
    }
}

mediagraph_framework::register_calculator!(DisplaySinkCalculator, "DisplaySinkCalculator");
