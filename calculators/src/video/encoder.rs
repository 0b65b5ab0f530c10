//! `OpenCvVideoEncoderCalculator`: writes a stream of frames to a video file.

use std::path::Path;

use mediagraph_framework::prelude::*;
use opencv::core::Size;
use opencv::prelude::*;
use opencv::videoio::{self, VideoWriter};
use serde::Deserialize;

use super::decoder::video_error;
use crate::image::ImageFrame;
use crate::VideoHeader;

/// Writes frames to a video file with OpenCV's `VideoWriter` (MediaPipe's calculator of this
/// name).
///
/// * Input streams: `VIDEO` ([`ImageFrame`], any format; written as 8-bit BGR); optional
///   `VIDEO_PRESTREAM` ([`VideoHeader`] at `PreStream`, for the frame rate).
/// * Input side packets: `OUTPUT_FILE_PATH` (String).
/// * Options ([`OpenCvVideoEncoderCalculatorOptions`]): `codec` (a fourcc; default by
///   container: `mp4v` for .mp4/.m4v/.mov, `MJPG` for .avi/.mkv), `video_format` (the
///   container; inferred from the extension, and if given it must match it), `fps` (default:
///   the `VIDEO_PRESTREAM` header's, else the `VIDEO` stream header's, else 30).
///
/// The file is created at the first frame, with that frame's size; every later frame must have
/// the same size (OpenCV would drop other sizes silently, so that is an error). A path whose
/// directory does not exist, an unknown extension without a `codec`, a fourcc that is not 4
/// characters, or a codec the container cannot take is an error naming the path. With no
/// frames, no file is written (a warning is logged).
///
/// ```yaml
/// - calculator: OpenCvVideoEncoderCalculator
///   input_stream: ["VIDEO:annotated", "VIDEO_PRESTREAM:header"]
///   input_side_packet: ["OUTPUT_FILE_PATH:output_video"]
///   options: {codec: "avc1", fps: 25}
/// ```
pub struct OpenCvVideoEncoderCalculator {
    options: OpenCvVideoEncoderCalculatorOptions,
    state: Option<Encoding>,
}

/// Options of [`OpenCvVideoEncoderCalculator`] (MediaPipe's
/// `OpenCvVideoEncoderCalculatorOptions`, without `width`/`height`: the size comes from the
/// frames).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenCvVideoEncoderCalculatorOptions {
    /// Four-character codec code, e.g. `mp4v`, `avc1`, `MJPG`, `XVID`.
    pub codec: Option<String>,
    /// Container, e.g. `mp4` or `avi`; must match the file extension when given.
    pub video_format: Option<String>,
    /// Frames per second written in the file (0: from the header, else 30).
    pub fps: f64,
}

const VIDEO: Input<ImageFrame> = Input::new("VIDEO");
const VIDEO_PRESTREAM: Input<VideoHeader> = Input::new("VIDEO_PRESTREAM").optional();
const OUTPUT_FILE_PATH: SideInput<String> = SideInput::new("OUTPUT_FILE_PATH");

/// Frame rate used when neither the options nor a header give one.
const DEFAULT_FPS: f64 = 30.0;

/// Per-run state.
struct Encoding {
    path: String,
    fourcc: i32,
    codec: String,
    header_fps: Option<f64>,
    writer: Option<(VideoWriter, Size)>,
    frames: u64,
}

/// The default codec for a container extension.
fn default_codec(ext: &str) -> Option<&'static str> {
    match ext {
        "mp4" | "m4v" | "mov" => Some("mp4v"),
        "avi" | "mkv" => Some("MJPG"),
        _ => None,
    }
}

fn fourcc(path: &str, codec: &str) -> Result<i32> {
    let chars: Vec<char> = codec.chars().collect();
    match chars.as_slice() {
        &[a, b, c, d] if chars.iter().all(|c| c.is_ascii()) => VideoWriter::fourcc(a, b, c, d)
            .map_err(|e| video_error(path, format!("codec \"{codec}\": {e}"))),
        _ => Err(video_error(
            path,
            format!("codec \"{codec}\" is not a four-character code (fourcc) such as \"mp4v\" or \"MJPG\""),
        )),
    }
}

impl Calculator for OpenCvVideoEncoderCalculator {
    type Options = OpenCvVideoEncoderCalculatorOptions;

    fn contract(cc: &mut Contract, options: &Self::Options) -> Result<()> {
        if !(options.fps.is_finite() && options.fps >= 0.0) {
            return Err(cc.error(crate::Error::Config {
                calculator: "OpenCvVideoEncoderCalculator",
                message: format!("fps must be 0 (automatic) or positive, got {}", options.fps),
            }));
        }
        cc.declare(&[&VIDEO, &VIDEO_PRESTREAM, &OUTPUT_FILE_PATH])
    }

    fn create(options: &Self::Options) -> Result<Self> {
        Ok(OpenCvVideoEncoderCalculator {
            options: options.clone(),
            state: None,
        })
    }

    fn open(&mut self, cx: &mut CalculatorContext) -> Result<()> {
        let path = cx.side_input(&OUTPUT_FILE_PATH)?.clone();
        let p = Path::new(&path);
        let ext = p
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if let Some(format) = &self.options.video_format {
            if !format.eq_ignore_ascii_case(&ext) {
                return Err(video_error(
                    &path,
                    format!("video_format \"{format}\" does not match the file extension \"{ext}\" (OpenCV picks the container from the extension)"),
                ));
            }
        }
        let codec = match (&self.options.codec, default_codec(&ext)) {
            (Some(c), _) => c.clone(),
            (None, Some(c)) => c.to_string(),
            (None, None) => {
                return Err(video_error(
                    &path,
                    format!("unknown video container \"{ext}\": use .mp4, .m4v, .mov, .avi or .mkv, or set the codec option"),
                ))
            }
        };
        let fourcc = fourcc(&path, &codec)?;
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(video_error(
                &path,
                format!("cannot write: directory {} does not exist", dir.display()),
            ));
        }
        let header_fps = cx
            .inputs()
            .id(VIDEO.tag(), 0)
            .and_then(|id| cx.input_header(id).get::<VideoHeader>().ok())
            .map(|h| h.frame_rate)
            .filter(|f| f.is_finite() && *f > 0.0);
        self.state = Some(Encoding {
            path,
            fourcc,
            codec,
            header_fps,
            writer: None,
            frames: 0,
        });
        Ok(())
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let Some(st) = self.state.as_mut() else {
            return Ok(Flow::Continue);
        };
        if let Some(h) = cx.input(&VIDEO_PRESTREAM).get()? {
            if h.frame_rate.is_finite() && h.frame_rate > 0.0 {
                st.header_fps = Some(h.frame_rate);
            }
        }
        let Some(frame) = cx.input(&VIDEO).get()? else {
            return Ok(Flow::Continue);
        };
        let size = Size::new(frame.width() as i32, frame.height() as i32);
        if st.writer.is_none() {
            let fps = if self.options.fps > 0.0 {
                self.options.fps
            } else {
                st.header_fps.unwrap_or(DEFAULT_FPS)
            };
            let writer = VideoWriter::new_with_backend(
                &st.path,
                videoio::CAP_FFMPEG,
                st.fourcc,
                fps,
                size,
                true,
            )
            .map_err(|e| video_error(&st.path, format!("cannot open for writing: {e}")))?;
            if !writer.is_opened().unwrap_or(false) {
                return Err(video_error(
                    &st.path,
                    format!(
                        "cannot open for writing with codec \"{}\" at {}x{} and {fps} fps (codec not supported by this container or this OpenCV build?)",
                        st.codec, size.width, size.height
                    ),
                ));
            }
            tracing::debug!(
                path = st.path,
                codec = st.codec,
                fps,
                width = size.width,
                height = size.height,
                "video writer opened"
            );
            st.writer = Some((writer, size));
        }
        let Some((writer, writer_size)) = st.writer.as_mut() else {
            return Ok(Flow::Continue);
        };
        if size != *writer_size {
            return Err(video_error(
                &st.path,
                format!(
                    "frame {} is {}x{} but the video is {}x{}; every frame must have the first frame's size",
                    st.frames, size.width, size.height, writer_size.width, writer_size.height
                ),
            ));
        }
        let bgr = frame.to_bgr_mat()?;
        writer
            .write(&bgr)
            .map_err(|e| video_error(&st.path, format!("writing frame {}: {e}", st.frames)))?;
        st.frames += 1;
        Ok(Flow::Continue)
    }

    fn close(&mut self, _cx: &mut CalculatorContext) -> Result<()> {
        let Some(st) = self.state.take() else {
            return Ok(());
        };
        let Some((mut writer, _)) = st.writer else {
            tracing::warn!(
                path = st.path,
                "no frames to write; no video file was created"
            );
            return Ok(());
        };
        writer
            .release()
            .map_err(|e| video_error(&st.path, format!("finishing the file: {e}")))?;
        let written = std::fs::metadata(&st.path).map(|m| m.len()).unwrap_or(0);
        if written == 0 {
            return Err(video_error(
                &st.path,
                format!(
                    "OpenCV wrote nothing for {} frames with codec \"{}\"",
                    st.frames, st.codec
                ),
            ));
        }
        tracing::debug!(
            path = st.path,
            frames = st.frames,
            bytes = written,
            "video written"
        );
        Ok(())
    }
}

mediagraph_framework::register_calculator!(
    OpenCvVideoEncoderCalculator,
    "OpenCvVideoEncoderCalculator"
);
