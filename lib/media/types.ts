/**
 * Decoded media as the multimodal pipeline passes it around: what the dataset loader produces
 * from files (lib/media, sharp / WAV / ffmpeg), what the built-in multimodal tasks generate in
 * memory, and what the encoders consume. Keeping one in-memory form means a task written out as
 * JSONL + media files and read back gives the model the same tensors as the in-memory task
 * (up to the file format's quantisation).
 */

/** An RGB image, row-major HWC, values in [0, 1]. */
export interface ImageData {
  kind: 'image';
  width: number;
  height: number;
  /** width·height·3 floats. */
  data: Float32Array;
}

/** Mono audio, samples in [-1, 1]. */
export interface AudioData {
  kind: 'audio';
  sampleRate: number;
  samples: Float32Array;
}

/** A clip as frames in display order (all the same size). */
export interface VideoData {
  kind: 'video';
  fps: number;
  frames: ImageData[];
}

export type MediaData = ImageData | AudioData | VideoData;

/** A row's media in the order its `<image>`, `<audio>`, `<video>` tags appear, per kind (ms-swift layout). */
export interface ExampleMedia {
  images?: ImageData[];
  audios?: AudioData[];
  videos?: VideoData[];
}

/**
 * What an encoder needs its inputs to be; the loader resizes / resamples / samples frames to
 * this so decoding happens once per row, not per step.
 */
export interface MediaSpec {
  image?: { width: number; height: number };
  audio?: { sampleRate: number; maxSeconds: number };
  video?: { width: number; height: number; numFrames: number };
}
