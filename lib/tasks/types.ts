import type { ExampleMedia, MediaSpec } from '../media/types';

/**
 * What a task is: prompts with verifiable reference answers, split into train and held-out,
 * plus how to read the answer out of a completion and how a well-formed completion looks.
 */

/** One example. `answer` is what accuracy is checked against; `solution` is the SFT target. */
export interface Example {
  /** Stable id (task-specific or the dataset line number). */
  id: string;
  /** The prompt text given to the model (chat messages are rendered to text first). */
  prompt: string;
  /** The reference answer (a number for arithmetic, the target for countdown, free text otherwise). */
  answer: string;
  /** A full reference completion for the supervised warm start; defaults to `answer`. */
  solution?: string;
  /**
   * The prompt's chat turns (system/user/…; a trailing assistant turn, the reference, is not
   * here) when the dataset row had `messages`: a tokenizer with a chat template renders these
   * turns instead of the flattened `prompt`.
   */
  messages?: { role: string; content: string }[];
  /**
   * Decoded images / audio / video for a multimodal prompt, in the order of the `<image>`,
   * `<audio>`, `<video>` tags in its text (ms-swift layout); absent for text-only rows.
   */
  media?: ExampleMedia;
  /** Task-specific data (e.g. countdown's numbers and target). */
  meta?: Record<string, unknown>;
  /** Where a dataset example comes from (absolute file path, 1-based line), for messages. */
  source?: { file: string; line: number };
}

export interface Task {
  readonly name: string;
  /** Training prompts. */
  readonly train: Example[];
  /** Held-out prompts (never in `train`), for evaluation. */
  readonly test: Example[];
  /** A completion that is well-formed matches this (the format reward and the format rate). */
  readonly formatPattern: RegExp;
  /** Extracts the final answer from a completion; null when there is none. */
  extractAnswer(completion: string): string | null;
  /** True when the completion solves the example. */
  isCorrect(completion: string, example: Example): boolean;
  /** Strings that end a completion (besides the tokenizer's EOS). */
  readonly stop?: string[];
  /** Multimodal tasks: the media the prompts carry and the size the encoders take (built-in tasks). */
  readonly media?: MediaSpec;
}
