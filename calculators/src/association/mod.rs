//! Association of detections with tracked boxes: the calculators of MediaPipe's object
//! tracking subgraph (`graphs/subgraphs/object_tracking.yaml`) around the box tracker.
//!
//! ```text
//! DETECTIONS -> DetectionUniqueIdCalculator -> DetectionsToTimedBoxListCalculator -> START_POS
//!     VIDEO  -> box tracking subgraph (BoxTrackerCalculator) -> BOXES
//!     BOXES + detections with ids -> TrackedDetectionManagerCalculator -> tracked DETECTIONS
//!                                          \-> CANCEL_OBJECT_ID (back edge to the tracker)
//! ```
//!
//! * [`DetectionUniqueIdCalculator`]: a fresh id for every detection (process-wide counter
//!   from 1), so every detection can be tracked and reported with an id.
//! * [`DetectionsToTimedBoxListCalculator`]: detections as start boxes for the tracker,
//!   stamped with the detection frame's time (the tracker catches them up).
//! * [`TrackedDetectionManagerCalculator`]: MediaPipe's association rules over
//!   [`crate::tracking::tracked_detection_manager`]: one persistent id per object, merged
//!   labels, timeout and out-of-view removal, cancels for the tracker, and (ours, on by
//!   default) smooth easing of a re-detected object's box.
//!
//! The tracked detections are ordinary `Vec<Detection>` packets; draw them with
//! [`crate::detection::DetectionsToAnnotationsCalculator`] (label, score and id).

pub mod detection_unique_id;
pub mod detections_to_timed_box_list;
pub mod tracked_detection_manager_calculator;

pub use detection_unique_id::DetectionUniqueIdCalculator;
pub use detections_to_timed_box_list::{
    detection_to_timed_box, DetectionsToTimedBoxListCalculator,
};
pub use tracked_detection_manager_calculator::{
    TrackedDetectionManagerCalculator, TrackedDetectionManagerCalculatorOptions,
};

#[cfg(test)]
mod tests;
