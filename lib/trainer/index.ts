export * from './batch';
export * from './checkpoint';
export * from './config';
export * from './grpo';
export * from './rollout';
export * from './schedule';
export * from './sft';
export * from './run';
