//! `OpenCvVideoDecoderCalculator`: reads a video file into a stream of frames.

use std::path::Path;

use mediagraph_framework::prelude::*;
use opencv::core::Mat;
use opencv::prelude::*;
use opencv::videoio::{self, VideoCapture};
use serde::{Deserialize, Serialize};

use crate::image::ImageFrame;
use crate::VideoHeader;

/// Decodes a video file with OpenCV (FFmpeg backend) into timestamped frames (MediaPipe's
/// calculator of this name).
///
/// * Input side packets: `INPUT_FILE_PATH` (String).
/// * Output streams: `VIDEO` ([`ImageFrame`], SRGB), timestamped by presentation time in
///   microseconds; `VIDEO_PRESTREAM` (optional, [`VideoHeader`] at `PreStream`: size, frame
///   rate, duration and frame count, which is also the `VIDEO` stream's header). Progress
///   (frames read of the frame count) is reported with `report_progress` for the runner's
///   progress bar; [`probe`] reads the header before a run.
/// * Output side packets: `DECODE_REPORT` (optional, [`DecodeReport`], set when the stream
///   ends): frames decoded, skipped and expected.
/// * Options ([`OpenCvVideoDecoderCalculatorOptions`]): `on_error` (`SKIP`, the default, or
///   `FAIL`).
///
/// **Timestamps** come from the decoder's position (`CAP_PROP_POS_MSEC`, the frame's
/// presentation time). Decoders are not always right about it (OpenCV 4.6 reports 0 for the
/// last frames of some MP4 files), so a timestamp that is not finite or not greater than the
/// previous one is replaced by `frame_index / fps` (and, should that not be greater either, by
/// the previous timestamp + 1 µs). `VIDEO` timestamps therefore always strictly increase; the
/// number of replaced timestamps is in the report and logged once.
///
/// **Bad input.** A missing path, a directory, an unreadable file or a file OpenCV cannot
/// decode is an error in `open` naming the path. A frame that decodes to nothing or to an
/// unusable image is skipped and counted (`SKIP`) or fails the run (`FAIL`); 100 bad frames
/// in a row end the stream. A stream that ends clearly before the frame count in the header
/// (a truncated file; more than 1% or 1 frame short) is logged with the missing frames
/// counted as skipped (`SKIP`), or fails the run (`FAIL`). Skips are reported with
/// `tracing::warn!`, in `DECODE_REPORT`, and as the node's dropped packets in the run's stats.
///
/// ```yaml
/// - calculator: OpenCvVideoDecoderCalculator
///   input_side_packet: ["INPUT_FILE_PATH:input_video"]
///   output_stream: ["VIDEO:frames", "VIDEO_PRESTREAM:header"]
/// ```
pub struct OpenCvVideoDecoderCalculator {
    on_error: OnError,
    state: Option<Decoding>,
}

/// What the decoder does with a frame it cannot decode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OnError {
    /// Skip it, count it and warn (the default).
    #[default]
    Skip,
    /// Fail the run.
    Fail,
}

/// Options of [`OpenCvVideoDecoderCalculator`]. MediaPipe's calculator has none; `on_error`
/// is ours.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenCvVideoDecoderCalculatorOptions {
    /// What to do with a corrupt frame or a truncated stream (default `SKIP`).
    pub on_error: OnError,
}

/// What one decoder run did: the `DECODE_REPORT` output side packet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DecodeReport {
    /// The file.
    pub path: String,
    /// Frames sent on `VIDEO`.
    pub frames_decoded: u64,
    /// Frames skipped: corrupt frames, plus the frames missing at the end of a stream that
    /// ended early.
    pub frames_skipped: u64,
    /// The frame count the file's header announced, if any.
    pub frames_expected: Option<u64>,
    /// Frames whose timestamp was derived from the frame index (see the calculator docs).
    pub timestamps_derived: u64,
}

mediagraph_framework::register_packet_type!(DecodeReport, "DecodeReport");

const INPUT_FILE_PATH: SideInput<String> = SideInput::new("INPUT_FILE_PATH");
const VIDEO: Output<ImageFrame> = Output::new("VIDEO");
const VIDEO_PRESTREAM: Output<VideoHeader> = Output::new("VIDEO_PRESTREAM").optional();
const DECODE_REPORT: SideOutput<DecodeReport> = SideOutput::new("DECODE_REPORT").optional();

/// Bad frames in a row after which the stream is ended.
const MAX_CONSECUTIVE_BAD_FRAMES: u32 = 100;

/// Per-run state.
struct Decoding {
    cap: VideoCapture,
    header: VideoHeader,
    /// OpenCV's frame buffer, reused.
    frame: Mat,
    /// Frames read from the decoder (good or bad), i.e. the index of the next one.
    index: u64,
    last_ts: Option<i64>,
    consecutive_bad: u32,
    report: DecodeReport,
    /// Corrupt frames skipped (the warning for each is thinned out).
    corrupt: RepeatedWarning,
}

pub(crate) fn video_error(path: impl Into<String>, message: impl Into<String>) -> Error {
    crate::Error::Video {
        path: path.into(),
        message: message.into(),
    }
    .into()
}

/// Checks that `path` names a readable regular file; the error names the path.
pub(crate) fn check_readable_file(path: &str) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| {
        let what = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => format!("cannot be read ({e})"),
        };
        video_error(path, what)
    })?;
    if meta.is_dir() {
        return Err(video_error(path, "is a directory, not a video file"));
    }
    std::fs::File::open(path).map_err(|e| video_error(path, format!("cannot be read ({e})")))?;
    Ok(())
}

/// Opens `path` for decoding and reads its header.
fn open_capture(path: &str) -> Result<(VideoCapture, VideoHeader)> {
    check_readable_file(path)?;
    // FFmpeg directly: trying every backend on a bad file only adds noise (GStreamer, image
    // sequences). A printf-style pattern (`frame_%04d.png`) is an image sequence: any backend.
    let api = if path.contains('%') {
        videoio::CAP_ANY
    } else {
        videoio::CAP_FFMPEG
    };
    let cap = VideoCapture::from_file(path, api)
        .map_err(|e| video_error(path, format!("cannot be opened as a video: {e}")))?;
    let opened = cap
        .is_opened()
        .map_err(|e| video_error(path, format!("cannot be opened as a video: {e}")))?;
    if !opened {
        return Err(video_error(
            path,
            "is not a video OpenCV can decode (not a video file, an unsupported codec, or a damaged or truncated container)",
        ));
    }
    let prop = |p: i32| cap.get(p).unwrap_or(0.0);
    let (w, h) = (
        prop(videoio::CAP_PROP_FRAME_WIDTH),
        prop(videoio::CAP_PROP_FRAME_HEIGHT),
    );
    if !(w >= 1.0 && h >= 1.0 && w <= 65535.0 && h <= 65535.0) {
        return Err(video_error(
            path,
            format!("has no usable video stream (frame size {w}x{h})"),
        ));
    }
    let fps = prop(videoio::CAP_PROP_FPS);
    let fps = if fps.is_finite() && fps > 0.0 {
        fps
    } else {
        0.0
    };
    let count = prop(videoio::CAP_PROP_FRAME_COUNT);
    let frame_count = (count.is_finite() && count >= 1.0).then_some(count.round() as u64);
    let duration = match (frame_count, fps > 0.0) {
        (Some(n), true) => n as f64 / fps,
        _ => 0.0,
    };
    let header = VideoHeader {
        width: w as u32,
        height: h as u32,
        frame_rate: fps,
        duration,
        frame_count,
    };
    Ok((cap, header))
}

/// The header of the video at `path` (size, frame rate, duration, frame count) without
/// decoding it: what a runner needs to size a progress bar before starting a graph.
pub fn probe(path: impl AsRef<Path>) -> Result<VideoHeader> {
    let path = path.as_ref().to_string_lossy().into_owned();
    open_capture(&path).map(|(_, header)| header)
}

impl Calculator for OpenCvVideoDecoderCalculator {
    type Options = OpenCvVideoDecoderCalculatorOptions;

    fn contract(cc: &mut Contract, _: &Self::Options) -> Result<()> {
        cc.declare(&[&INPUT_FILE_PATH, &VIDEO, &VIDEO_PRESTREAM, &DECODE_REPORT])
    }

    fn create(options: &Self::Options) -> Result<Self> {
        Ok(OpenCvVideoDecoderCalculator {
            on_error: options.on_error,
            state: None,
        })
    }

    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        let path = cx.side_input(&INPUT_FILE_PATH)?.clone();
        let (cap, header) = open_capture(&path)?;
        tracing::debug!(
            path,
            width = header.width,
            height = header.height,
            fps = header.frame_rate,
            frames = ?header.frame_count,
            "video opened"
        );
        cx.output(&VIDEO).set_header(Packet::new(header.clone()))?;
        cx.output(&VIDEO_PRESTREAM)
            .send(header.clone(), Timestamp::PRE_STREAM)?;
        self.state = Some(Decoding {
            cap,
            report: DecodeReport {
                path,
                frames_expected: header.frame_count,
                ..DecodeReport::default()
            },
            header,
            frame: Mat::default(),
            index: 0,
            last_ts: None,
            consecutive_bad: 0,
            corrupt: RepeatedWarning::default(),
        });
        Ok(())
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let Some(st) = self.state.as_mut() else {
            return Ok(Flow::Stop);
        };
        loop {
            let got = st.cap.read(&mut st.frame).map_err(|e| {
                video_error(&st.report.path, format!("decoding frame {}: {e}", st.index))
            })?;
            if !got {
                return end_of_stream(st, self.on_error, cx);
            }
            let index = st.index;
            st.index += 1;
            let ts = next_timestamp(st, index);
            let image = if st.frame.empty() {
                Err(video_error(
                    &st.report.path,
                    "decoder returned an empty frame",
                ))
            } else {
                ImageFrame::from_bgr_mat(&st.frame)
            };
            match image {
                Ok(image) => {
                    st.consecutive_bad = 0;
                    st.report.frames_decoded += 1;
                    cx.output(&VIDEO).send(image, Timestamp::new(ts))?;
                    cx.report_progress(st.index, st.header.frame_count);
                    return Ok(Flow::Continue);
                }
                Err(e) => {
                    let path = st.report.path.as_str();
                    if self.on_error == OnError::Fail {
                        return Err(video_error(
                            path,
                            format!("frame {index} could not be decoded: {e}"),
                        ));
                    }
                    st.report.frames_skipped += 1;
                    st.consecutive_bad += 1;
                    cx.record_dropped(1);
                    if st.corrupt.occurred().is_some() {
                        tracing::warn!(
                            path,
                            frame = index,
                            error = %e,
                            skipped = st.report.frames_skipped,
                            "skipping a corrupt video frame ({}; the run's stats and the \
                             decode report count all of them)",
                            RepeatedWarning::NOTE
                        );
                    }
                    if st.consecutive_bad >= MAX_CONSECUTIVE_BAD_FRAMES {
                        tracing::warn!(
                            path,
                            "{MAX_CONSECUTIVE_BAD_FRAMES} bad frames in a row; ending the stream"
                        );
                        return Ok(Flow::Stop);
                    }
                }
            }
        }
    }

    fn close(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        if let Some(mut st) = self.state.take() {
            let _ = st.cap.release();
            cx.set_side_output(&DECODE_REPORT, st.report)?;
        }
        Ok(())
    }
}

/// The timestamp (µs) of frame `index`, just read: the decoder's position if it is usable and
/// increasing, else derived from the index and frame rate, else the previous one + 1.
fn next_timestamp(st: &mut Decoding, index: u64) -> i64 {
    let ms = st.cap.get(videoio::CAP_PROP_POS_MSEC).unwrap_or(f64::NAN);
    let from_decoder = (0.0..1.0e12)
        .contains(&ms)
        .then(|| (ms * 1000.0).round() as i64);
    let ts = match (from_decoder, st.last_ts) {
        (Some(t), Some(last)) if t > last => t,
        (Some(t), None) => t,
        _ => {
            st.report.timestamps_derived += 1;
            if st.report.timestamps_derived == 1 {
                tracing::warn!(
                    path = st.report.path,
                    frame = index,
                    decoder_ms = ms,
                    "decoder timestamp missing or not increasing; deriving timestamps from the frame index"
                );
            }
            let derived = if st.header.frame_rate > 0.0 {
                (index as f64 * 1.0e6 / st.header.frame_rate).round() as i64
            } else {
                0
            };
            match st.last_ts {
                Some(last) if derived <= last => last + 1,
                _ => derived,
            }
        }
    };
    st.last_ts = Some(ts);
    ts
}

/// The decoder has no more frames: checks the count against the header.
fn end_of_stream(st: &mut Decoding, on_error: OnError, cx: &mut CalculatorContext) -> Result<Flow> {
    if let Some(expected) = st.header.frame_count {
        let missing = expected.saturating_sub(st.index);
        if missing > 1 && missing * 100 > expected {
            let path = st.report.path.as_str();
            let message = format!(
                "the video ended after {} of {expected} frames (truncated or damaged file?)",
                st.index
            );
            if on_error == OnError::Fail {
                return Err(video_error(path, message));
            }
            st.report.frames_skipped += missing;
            cx.record_dropped(missing);
            tracing::warn!(
                path,
                missing,
                skipped = st.report.frames_skipped,
                "{message}"
            );
        }
    }
    if st.report.frames_skipped > 0 {
        tracing::warn!(
            path = st.report.path,
            decoded = st.report.frames_decoded,
            skipped = st.report.frames_skipped,
            "video decoded with skipped frames"
        );
    }
    Ok(Flow::Stop)
}

mediagraph_framework::register_calculator!(
    OpenCvVideoDecoderCalculator,
    "OpenCvVideoDecoderCalculator"
);
