export { main } from './main.ts';
export * from './command.ts';
