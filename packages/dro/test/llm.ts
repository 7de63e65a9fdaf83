/** The runtime pieces the tests use: the real loader, and the tiny-model writer from llm's testing kit. */
export { loadModel } from '@dro/llm';
export { writeTinyHfModel, tinyConfig } from '@dro/llm/testing';
