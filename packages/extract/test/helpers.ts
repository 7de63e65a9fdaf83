/**
 * Stage test fixtures (a real store in a temp dir, a recording StageContext, rendered inputs made with the
 * model's own tokenizer and template) are shared with the sampling stage's tests.
 */
export { storeRenderedInputs, tempDir, testContext, type TestContext } from '../../sampling/test/helpers.ts';
