//! `VideoHeader`: what a video stream's consumers need to know up front (MediaPipe's
//! `VideoHeader`): frame size, frame rate, duration and, when known, the frame count.

use serde::{Deserialize, Serialize};

/// The header of a video stream, sent at `PreStream` on a `VIDEO_PRESTREAM` / `VIDEO_HEADER`
/// stream (or set as a stream header).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VideoHeader {
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frames per second.
    pub frame_rate: f64,
    /// Duration in seconds (0 when unknown, e.g. a camera).
    pub duration: f64,
    /// Number of frames, when the source knows it (video files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_count: Option<u64>,
}

mediagraph_framework::register_packet_type!(VideoHeader, "VideoHeader");
