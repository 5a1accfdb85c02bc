export * from './types';
export * from './rng';
export * from './answer';
export * from './arithmetic';
export * from './countdown';
export * from './dataset';
export * from './multimodal';

import { Task } from './types';
import { arithmeticTask, ArithmeticOptions } from './arithmetic';
import { countdownTask, CountdownOptions } from './countdown';
import { datasetTask } from './dataset';
import { multimodalTask, MULTIMODAL_TASKS } from './multimodal';
import { AnswerMatchOptions } from './answer';

/** Options that select and shape a task (the CLI's --task, --digits, ... flags). */
export interface TaskSpec extends ArithmeticOptions, Omit<CountdownOptions, 'numbers'> {
  /** 'arithmetic' (default), 'countdown', a multimodal task (clevr_count, clevr_count_all, video_direction, video_direction_shuffled, beep_count), or a path to a JSONL dataset. */
  task?: string;
  /** countdown: how many numbers. */
  countdownNumbers?: number;
  /** JSONL held-out file for a dataset task. */
  testFile?: string;
  /** Regex source overriding the task's format pattern. */
  formatPattern?: string;
  /** Dataset tasks: 'normalized' (default: numbers by value, text trimmed and case-folded), 'case_sensitive', or 'exact'. */
  answerMatch?: 'normalized' | 'case_sensitive' | 'exact';
}

export function makeTask(s: TaskSpec): Task {
  const name = s.task ?? 'arithmetic';
  let t: Task;
  if (name === 'arithmetic') t = arithmeticTask(s);
  else if (name === 'countdown') t = countdownTask({ ...s, numbers: s.countdownNumbers });
  else if ((MULTIMODAL_TASKS as readonly string[]).includes(name)) t = multimodalTask(name, s)!;
  else if (/\.jsonl?$/.test(name)) {
    const answerMatch: AnswerMatchOptions = s.answerMatch === 'exact' ? { exact: true } : { ignoreCase: s.answerMatch !== 'case_sensitive' };
    t = datasetTask({ train: name, test: s.testFile, seed: s.seed, answerMatch });
  }
  else throw new RangeError(`unknown task '${name}': expected 'arithmetic', 'countdown', ${MULTIMODAL_TASKS.map((x) => `'${x}'`).join(', ')} or a path to a .jsonl dataset`);
  if (s.formatPattern) return { ...t, formatPattern: new RegExp(s.formatPattern), extractAnswer: t.extractAnswer, isCorrect: t.isCorrect };
  return t;
}
