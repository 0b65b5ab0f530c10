//! `CameraSourceCalculator`: frames from a camera.

use std::time::Instant;

use mediagraph_framework::prelude::*;
use opencv::core::Mat;
use opencv::prelude::*;
use opencv::videoio::{self, VideoCapture};
use serde::Deserialize;

use super::decoder::video_error;
use crate::image::ImageFrame;
use crate::VideoHeader;

/// Captures frames from a camera with OpenCV's `VideoCapture` (ours: MediaPipe's desktop demos
/// open the camera outside the graph).
///
/// * Output streams: `VIDEO` ([`ImageFrame`], SRGB), timestamped by the time since the camera
///   was opened in microseconds (monotonic clock; strictly increasing); `VIDEO_PRESTREAM`
///   (optional, [`VideoHeader`] at `PreStream` with the size and frame rate the driver
///   granted; no frame count).
/// * Options ([`CameraSourceCalculatorOptions`]): `device` (index, default 0) or `path` (a
///   device path such as `/dev/video2`, or a stream URL), and the requested `width`, `height`
///   and `fps` (0: the driver's default). The driver may grant something else; the header
///   says what was granted.
///
/// A camera that cannot be opened is an error in `open` ("camera 0 could not be opened (no
/// device /dev/video0?)"). A camera that stops delivering frames (30 failed reads in a row,
/// e.g. unplugged) fails the run with an error naming it (`on_lost: FAIL`, the default), or ends
/// its stream cleanly with a warning (`on_lost: STOP`), so the rest of the graph finishes. The
/// source otherwise runs until the graph is stopped or cancelled.
///
/// ```yaml
/// - calculator: CameraSourceCalculator
///   output_stream: ["VIDEO:frames"]
///   options: {device: 0, width: 640, height: 480, fps: 30}
/// ```
pub struct CameraSourceCalculator {
    options: CameraSourceCalculatorOptions,
    state: Option<Capturing>,
}

/// Options of [`CameraSourceCalculator`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CameraSourceCalculatorOptions {
    /// Camera index (`/dev/video<device>` on Linux). Ignored when `path` is set.
    pub device: i32,
    /// A device path or stream URL, instead of `device`.
    pub path: Option<String>,
    /// Requested frame width (0: driver default).
    pub width: u32,
    /// Requested frame height (0: driver default).
    pub height: u32,
    /// Requested frame rate (0: driver default).
    pub fps: f64,
    /// What a camera that stops delivering frames does: `FAIL` the run (default) or `STOP` its
    /// stream.
    pub on_lost: OnLost,
}

/// What [`CameraSourceCalculator`] does when the camera stops delivering frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OnLost {
    /// Fail the run with an error naming the camera.
    #[default]
    Fail,
    /// End the stream (a warning is logged), so the graph finishes with what it has.
    Stop,
}

const VIDEO: Output<ImageFrame> = Output::new("VIDEO");
const VIDEO_PRESTREAM: Output<VideoHeader> = Output::new("VIDEO_PRESTREAM").optional();

/// Failed reads in a row after which the camera counts as gone.
const MAX_FAILED_READS: u32 = 30;

struct Capturing {
    cap: VideoCapture,
    name: String,
    frame: Mat,
    started: Instant,
    last_ts: i64,
    failed_reads: u32,
}

impl CameraSourceCalculatorOptions {
    /// How the camera is named in messages.
    fn name(&self) -> String {
        match &self.path {
            Some(p) => format!("camera {p}"),
            None => format!("camera {}", self.device),
        }
    }
}

impl Calculator for CameraSourceCalculator {
    type Options = CameraSourceCalculatorOptions;

    fn contract(cc: &mut Contract, options: &Self::Options) -> Result<()> {
        if !(options.fps.is_finite() && options.fps >= 0.0) || options.device < 0 {
            return Err(cc.error(crate::Error::Config {
                calculator: "CameraSourceCalculator",
                message: "device must be >= 0 and fps >= 0".into(),
            }));
        }
        cc.declare(&[&VIDEO, &VIDEO_PRESTREAM])
    }

    fn create(options: &Self::Options) -> Result<Self> {
        Ok(CameraSourceCalculator {
            options: options.clone(),
            state: None,
        })
    }

    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        let o = &self.options;
        let name = o.name();
        let cap = match &o.path {
            Some(p) => VideoCapture::from_file(p, videoio::CAP_ANY),
            None => VideoCapture::new(o.device, videoio::CAP_ANY),
        };
        let hint = match &o.path {
            Some(p) => format!("no such device or stream {p}?"),
            None => format!("no device /dev/video{}?", o.device),
        };
        let mut cap =
            cap.map_err(|e| Error::msg(format!("{name} could not be opened ({hint}): {e}")))?;
        if !cap.is_opened().unwrap_or(false) {
            bail!("{name} could not be opened ({hint})");
        }
        // Requests; the driver may ignore them (the header reports what was granted).
        if o.width > 0 {
            let _ = cap.set(videoio::CAP_PROP_FRAME_WIDTH, f64::from(o.width));
        }
        if o.height > 0 {
            let _ = cap.set(videoio::CAP_PROP_FRAME_HEIGHT, f64::from(o.height));
        }
        if o.fps > 0.0 {
            let _ = cap.set(videoio::CAP_PROP_FPS, o.fps);
        }
        let prop = |p: i32| cap.get(p).unwrap_or(0.0);
        let fps = prop(videoio::CAP_PROP_FPS);
        let header = VideoHeader {
            width: prop(videoio::CAP_PROP_FRAME_WIDTH).max(0.0) as u32,
            height: prop(videoio::CAP_PROP_FRAME_HEIGHT).max(0.0) as u32,
            frame_rate: if fps.is_finite() && fps > 0.0 {
                fps
            } else {
                0.0
            },
            duration: 0.0,
            frame_count: None,
        };
        tracing::info!(
            camera = name,
            width = header.width,
            height = header.height,
            fps = header.frame_rate,
            "camera opened"
        );
        cx.output(&VIDEO).set_header(Packet::new(header.clone()))?;
        cx.output(&VIDEO_PRESTREAM)
            .send(header, Timestamp::PRE_STREAM)?;
        self.state = Some(Capturing {
            cap,
            name,
            frame: Mat::default(),
            started: Instant::now(),
            last_ts: -1,
            failed_reads: 0,
        });
        Ok(())
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let Some(st) = self.state.as_mut() else {
            return Ok(Flow::Stop);
        };
        loop {
            let got = st.cap.read(&mut st.frame).unwrap_or(false) && !st.frame.empty();
            if !got {
                st.failed_reads += 1;
                if st.failed_reads >= MAX_FAILED_READS {
                    let why = format!(
                        "stopped delivering frames ({MAX_FAILED_READS} failed reads in a row; unplugged?)"
                    );
                    if self.options.on_lost == OnLost::Stop {
                        tracing::warn!(camera = %st.name, "{why}; ending its stream (on_lost: STOP)");
                        return Ok(Flow::Stop);
                    }
                    return Err(video_error(&st.name, why));
                }
                continue;
            }
            st.failed_reads = 0;
            let image = ImageFrame::from_bgr_mat(&st.frame)?;
            let elapsed = i64::try_from(st.started.elapsed().as_micros()).unwrap_or(i64::MAX - 1);
            let ts = elapsed.max(st.last_ts + 1);
            st.last_ts = ts;
            cx.output(&VIDEO).send(image, Timestamp::new(ts))?;
            return Ok(Flow::Continue);
        }
    }

    fn close(&mut self, _cx: &mut CalculatorContext) -> Result<()> {
        if let Some(mut st) = self.state.take() {
            let _ = st.cap.release();
        }
        Ok(())
    }
}

mediagraph_framework::register_calculator!(CameraSourceCalculator, "CameraSourceCalculator");
