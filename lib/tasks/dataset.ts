/**
 * User datasets as JSONL, in the layout ms-swift uses for GRPO: one JSON object per line with
 * the prompt as `messages` (chat turns; a trailing assistant turn is taken as the reference
 * solution), `prompt` or `query` (text), and the reference answer as `solution` (ms-swift's
 * column for accuracy rewards), `answer` or `response`. Other fields are kept in `meta` and
 * passed to reward functions. Malformed lines are reported with their line number.
 */
import * as fs from 'fs';
import * as nodePath from 'path';
import { Example, Task } from './types';
import { AnswerMatchOptions, answersMatch, extractAnswer } from './answer';
import { permutation } from './rng';
import { parseMediaRefs, rowTexts } from '../media/dataset';

export interface ChatMessage {
  role: string;
  content: string;
}

export interface DatasetLineError {
  /** 1-based line number in the file. */
  line: number;
  message: string;
  /** The column at fault, when one is (e.g. 'images'), and the index in it. */
  field?: string;
  index?: number;
}

export class DatasetError extends Error {
  constructor(readonly source: string, readonly errors: DatasetLineError[]) {
    super(
      `${source}: ${errors.length} malformed line${errors.length === 1 ? '' : 's'}:\n` +
        errors.slice(0, 20).map((e) => `  line ${e.line}: ${e.message}`).join('\n') +
        (errors.length > 20 ? `\n  ... and ${errors.length - 20} more` : ''),
    );
    this.name = 'DatasetError';
  }
}

/** Chat turns to the prompt text the model sees: each turn's content on its own line. */
export function renderMessages(messages: ChatMessage[]): string {
  return messages.map((m) => m.content).join('\n');
}

function isMessages(v: unknown): v is ChatMessage[] {
  return Array.isArray(v) && v.length > 0 && v.every((m) => m && typeof m === 'object' && typeof m.role === 'string' && typeof m.content === 'string');
}

/** Parses JSONL text. Blank lines are skipped; every malformed line is collected in `errors`. */
export function parseJsonlDataset(text: string, file?: string): { examples: Example[]; errors: DatasetLineError[] } {
  const examples: Example[] = [];
  const errors: DatasetLineError[] = [];
  const lines = text.split(/\r?\n/);
  for (let k = 0; k < lines.length; k++) {
    const line = lines[k].trim();
    if (!line) continue;
    const no = k + 1;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      errors.push({ line: no, message: `invalid JSON (${(e as Error).message})` });
      continue;
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
      errors.push({ line: no, message: 'expected a JSON object' });
      continue;
    }
    const o = obj as Record<string, unknown>;
    let prompt: string | undefined;
    let fromAssistant: string | undefined;
    let messages: ChatMessage[] | undefined;
    if (o.messages !== undefined) {
      if (!isMessages(o.messages)) {
        errors.push({ line: no, message: "'messages' must be a non-empty array of {role, content} with string values" });
        continue;
      }
      const msgs = [...o.messages];
      if (msgs[msgs.length - 1].role === 'assistant') fromAssistant = msgs.pop()!.content;
      if (!msgs.length) {
        errors.push({ line: no, message: "'messages' has no turn before the assistant's" });
        continue;
      }
      prompt = renderMessages(msgs);
      messages = msgs.map((m) => ({ role: m.role, content: m.content }));
    } else if (typeof o.prompt === 'string') prompt = o.prompt;
    else if (isMessages(o.prompt)) {
      prompt = renderMessages(o.prompt);
      messages = o.prompt.map((m) => ({ role: m.role, content: m.content }));
    }
    else if (typeof o.query === 'string') prompt = o.query;
    if (prompt === undefined) {
      errors.push({ line: no, message: "missing the prompt: expected 'messages', 'prompt' or 'query'" });
      continue;
    }
    const sol = o.solution ?? o.answer ?? o.response ?? fromAssistant;
    if (sol === undefined || sol === null) {
      errors.push({ line: no, message: "missing the reference solution: expected 'solution', 'answer', 'response' or a final assistant turn" });
      continue;
    }
    if (typeof sol !== 'string' && typeof sol !== 'number') {
      errors.push({ line: no, message: `the reference solution must be a string or a number, got ${Array.isArray(sol) ? 'array' : typeof sol}` });
      continue;
    }
    // Media columns (ms-swift layout): checked here, decoded later by loadExampleMedia with the model's MediaSpec.
    if (o.images !== undefined || o.audios !== undefined || o.videos !== undefined || /<(image|audio|video)>/.test(line)) {
      try {
        parseMediaRefs(o, rowTexts(o), file ? nodePath.dirname(file) : process.cwd());
      } catch (e) {
        const x = e as Error & { field?: string; index?: number };
        const where = x.field === undefined ? '' : `${x.field}${x.index === undefined ? '' : `[${x.index}]`}: `;
        errors.push({ line: no, message: where + x.message, field: x.field, index: x.index });
        continue;
      }
    }
    const solution = String(sol);
    const meta: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(o)) if (!['messages', 'prompt', 'query', 'solution', 'answer', 'response'].includes(key)) meta[key] = v;
    // With both columns, `solution` is the SFT target and `answer` the reference answer
    // (what writeMediaDataset writes when the answer is not what extractAnswer reads out of the solution).
    const answer = o.solution !== undefined && (typeof o.answer === 'string' || typeof o.answer === 'number') ? String(o.answer) : extractAnswer(solution) ?? solution.trim();
    examples.push({ id: `line-${no}`, prompt, answer, solution, ...(messages ? { messages } : {}), meta, ...(file ? { source: { file, line: no } } : {}) });
  }
  return { examples, errors };
}

/** Reads and parses a JSONL file; throws a DatasetError naming every malformed line unless `skipMalformed`. */
export function loadJsonlDataset(path: string, opts: { skipMalformed?: boolean; onError?: (e: DatasetLineError) => void } = {}): Example[] {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`dataset ${path}: cannot read (${(e as Error).message})`);
  }
  const { examples, errors } = parseJsonlDataset(text, nodePath.resolve(path));
  if (errors.length) {
    if (!opts.skipMalformed) throw new DatasetError(path, errors);
    for (const e of errors) opts.onError?.(e);
  }
  if (!examples.length) throw new Error(`dataset ${path}: no usable examples`);
  return examples;
}

export interface DatasetTaskOptions {
  /** Training JSONL. */
  train: string;
  /** Held-out JSONL; without it `testFraction` of train is held out. */
  test?: string;
  /** Fraction held out when there is no test file. Default 0.1. */
  testFraction?: number;
  seed?: number;
  /** Regex of a well-formed completion. Default ms-swift's format reward: <think>…</think><answer>…</answer>. */
  formatPattern?: RegExp;
  /** How an extracted answer is compared with the reference (answersMatch). Default: numbers by value, text normalised. */
  answerMatch?: AnswerMatchOptions;
  skipMalformed?: boolean;
  onError?: (e: DatasetLineError) => void;
}

/** A Task from JSONL files: accuracy compares the extracted answer with the reference. */
export function datasetTask(o: DatasetTaskOptions): Task {
  const opts = { skipMalformed: o.skipMalformed, onError: o.onError };
  let train = loadJsonlDataset(o.train, opts);
  let test: Example[];
  if (o.test) test = loadJsonlDataset(o.test, opts);
  else {
    const perm = permutation(train.length, o.seed ?? 0);
    const nTest = Math.max(1, Math.floor(train.length * (o.testFraction ?? 0.1)));
    test = perm.slice(0, nTest).map((i) => train[i]);
    train = perm.slice(nTest).map((i) => train[i]);
  }
  return {
    name: `dataset:${o.train}`,
    train,
    test,
    formatPattern: o.formatPattern ?? /^<think>[\s\S]*?<\/think>\s*<answer>[\s\S]*?<\/answer>\s*$/,
    extractAnswer,
    isCorrect: (c: string, ex: Example) => answersMatch(extractAnswer(c), ex.answer, o.answerMatch),
  };
}
