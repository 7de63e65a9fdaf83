/**
 * A render is answered only by its own reply. One CI run (2026-11-30) saw data-prep tokenise the chat
 * rendered for the previous request: a render killed at its time budget could still deliver its reply
 * after the next request reached the relay, which took it as that request's answer. The sandbox's child
 * is started here with a fault that re-sends each previous reply before the real one — the late reply
 * of that run, on every render — and every render must still get its own text.
 */
import { beforeAll, describe, expect, it } from 'vitest';

// Read by the rendering process, which the relay starts with this process's environment: set before the
// first render of this file (vitest runs each test file in its own process).
process.env.DRO_TEMPLATE_SANDBOX_FAULT = 'stale-reply';

const { renderSandboxed } = await import('../src/template/template-sandbox.ts');

describe('the template sandbox with late replies from earlier requests', () => {
  beforeAll(() => {
    renderSandboxed('{{ messages[0].content }}', { messages: [{ content: 'warm-up' }] }, 7);
  });

  it('every render gets its own text, never an earlier request’s', () => {
    const source = '<|im_start|>system\n{{ messages[0].content }}<|im_end|>';
    for (let i = 0; i < 20; i++) {
      const content = `request ${i}`;
      expect(renderSandboxed(source, { messages: [{ content }] }, content.length)).toBe(`<|im_start|>system\n${content}<|im_end|>`);
    }
  });

  it('a render that fails is followed by renders that get their own text', () => {
    expect(() => renderSandboxed('{{ raise_exception("no") }}', { messages: [] }, 0)).toThrow(/no/);
    expect(renderSandboxed('{{ messages[0].content }}!', { messages: [{ content: 'after' }] }, 5)).toBe('after!');
  });
});
