/** The runtime pieces the tests use (until @dro/llm's index re-exports them). */
export { loadModel } from '../../llm/src/model/load-model.ts';
export { writeTinyHfModel, tinyConfig } from '../../llm/src/testing/tiny-model.ts';
