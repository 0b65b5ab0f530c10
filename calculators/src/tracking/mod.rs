//! Motion analysis and tracking algorithms (MediaPipe's box-tracking front half), free of
//! framework types so they can be used and tested on their own.
//!
//! * [`image`]: [`GrayImage`], the 8-bit image the algorithms read.
//! * [`features`]: grid-stratified minimum-eigenvalue corners with a minimum-distance mask.
//! * [`klt`]: pyramidal Lucas-Kanade tracking (OpenCV's implementation behind our functions).
//! * [`region_flow`]: the per-frame feature list and the multi-grid RANSAC outlier rejection.
//! * [`camera_motion`]: translation -> similarity -> homography IRLS cascade with stability
//!   checks and fallback.
//! * [`motion_analysis`]: the per-frame pipeline with long tracks.
//! * [`tracking_data`]: the compact per-frame `TrackingData` and its binary codec.
//! * [`flow_packager`]: region flow + camera motion -> `TrackingData`.
//! * [`visualize`]: feature tracks drawn on frames.
//! * [`motion_box`]: one tracked box and its IRLS track step.
//! * [`box_tracker`]: timed boxes, many boxes over a cache of frames (catch-up, cancel,
//!   random access) and path interpolation.

pub mod box_tracker;
pub mod camera_motion;
pub mod features;
pub mod flow_packager;
pub mod image;
pub mod klt;
pub mod motion_analysis;
pub mod motion_box;
pub mod region_flow;
pub mod tracked_detection_manager;
pub mod tracking_data;
pub mod visualize;

pub use camera_motion::{
    CameraMotion, CameraMotionType, Homography, LinearSimilarityModel, TranslationModel,
};
pub use flow_packager::{FlowPackager, FlowPackagerOptions};
pub use image::GrayImage;
pub use motion_analysis::{MotionAnalysis, MotionAnalysisOptions, StageTimes};
pub use region_flow::{RegionFlowFeature, RegionFlowFeatureList};
pub use tracking_data::{MotionData, TrackingData};

/// Errors of the tracking algorithms.
#[derive(Debug, thiserror::Error)]
pub enum TrackingError {
    /// An image has an unusable size or layout.
    #[error("image: {0}")]
    Image(String),
    /// An OpenCV call failed.
    #[error("{what}: OpenCV error: {source}")]
    OpenCv {
        /// The operation.
        what: &'static str,
        /// OpenCV's error.
        #[source]
        source: opencv::Error,
    },
    /// A binary `TrackingData` blob could not be decoded.
    #[error("tracking data decode: {0}")]
    Decode(String),
    /// A `TrackingData` cannot be encoded (a limit of the format is exceeded).
    #[error("tracking data encode: {0}")]
    Encode(String),
}

impl From<TrackingError> for mediagraph_framework::Error {
    fn from(e: TrackingError) -> Self {
        mediagraph_framework::Error::other(e)
    }
}

pub(crate) trait CvResult<T> {
    fn cv(self, what: &'static str) -> Result<T, TrackingError>;
}

impl<T> CvResult<T> for opencv::Result<T> {
    fn cv(self, what: &'static str) -> Result<T, TrackingError> {
        self.map_err(|source| TrackingError::OpenCv { what, source })
    }
}

/// A small deterministic generator (SplitMix64) for the seeded RANSAC stages.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator with the given seed.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform index in `0..n` (`n` > 0; 0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
        }
    }

    /// A uniform value in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}
