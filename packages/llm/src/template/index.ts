export { ChatTemplate, type ChatMessage, type ChatRole, type ChatTemplateOptions, type SystemContentSpan } from './chat-template.ts';
