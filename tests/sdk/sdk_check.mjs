// sdk_check.mjs - the official OpenAI and Anthropic JavaScript SDKs, unmodified, against cx-mock:
// only their base URL (and a key the mock was started with) is changed. Checks non-streaming and
// streaming calls on both APIs (text, usage, event order), the model list, typed errors for
// injected faults, the SDKs' own retries honouring the mock's retry-after headers, 401s, the
// OpenAI embeddings, legacy completions and Responses APIs (streaming and not, through the SDK's
// own helpers), tool calls and structured output on chat, Responses and messages (the SDKs'
// stream helpers reassembling arguments, their parse helpers, and their tool-running loops
// sending results back), and what the mock's request log recorded of an SDK call.
//
// Usage: MOCK_URL=http://127.0.0.1:PORT MOCK_KEY=sk-... node sdk_check.mjs
// Prints one line per check and a closing "N passed, N failed"; exits 1 on any failure.
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { betaTool } from '@anthropic-ai/sdk/helpers/beta/json-schema';
import { jsonSchemaOutputFormat } from '@anthropic-ai/sdk/helpers/json-schema';

const base = process.env.MOCK_URL;
const key = process.env.MOCK_KEY ?? 'sk-mock-test';
if (!base) {
  console.error('sdk_check: set MOCK_URL to the mock server, e.g. http://127.0.0.1:8080');
  process.exit(2);
}

const openai = new OpenAI({ apiKey: key, baseURL: `${base}/v1` });
const anthropic = new Anthropic({ apiKey: key, baseURL: base });
const SYSTEM =
  'You are a Linux package expert. Reply with a JSON object in a ```json block with a "commands" array of shell commands and an "explanation".';

let passed = 0;
let failed = 0;

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok    ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL  ${name}: ${e?.stack ?? e}`);
  }
}

// The commands array of the reply's ```json block.
function commands(text) {
  const m = /```json\n([\s\S]*?)\n```/.exec(text);
  assert(m, `no json block in: ${text.slice(0, 200)}`);
  const obj = JSON.parse(m[1]);
  assert(Array.isArray(obj.commands), 'commands is not an array');
  return obj.commands;
}

async function admin(path, body) {
  const r = await fetch(`${base}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert(r.ok, `${path}: HTTP ${r.status}`);
  return r.json();
}

let plainCommands;

await check('openai: models.list', async () => {
  const ids = [];
  for await (const m of openai.models.list()) ids.push(m.id);
  assert(ids.length >= 1, 'no models');
});

await check('openai: chat.completions.create', async () => {
  const r = await openai.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [
      { role: 'system', content: SYSTEM },
      { role: 'user', content: 'Install package: nginx' },
    ],
  });
  assert(r.object === 'chat.completion', `object ${r.object}`);
  assert(r.model === 'gpt-4o-mini', `model ${r.model}`);
  const c = r.choices[0];
  assert(c.message.role === 'assistant', 'role');
  assert(c.finish_reason === 'stop', `finish_reason ${c.finish_reason}`);
  plainCommands = commands(c.message.content);
  assert(plainCommands.includes('sudo apt-get install -y nginx'), 'nginx install command missing');
  const u = r.usage;
  assert(u.completion_tokens > 10 && u.prompt_tokens > 0, 'usage');
  assert(u.total_tokens === u.prompt_tokens + u.completion_tokens, 'total_tokens');
});

await check('openai: streaming with include_usage', async () => {
  const stream = await openai.chat.completions.create({
    model: 'gpt-4o-mini',
    messages: [
      { role: 'system', content: SYSTEM },
      { role: 'user', content: 'Install package: nginx' },
    ],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let pieces = 0;
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    assert(chunk.object === 'chat.completion.chunk', `object ${chunk.object}`);
    if (chunk.usage) usage = chunk.usage;
    for (const ch of chunk.choices) {
      if (ch.delta?.content) {
        text += ch.delta.content;
        pieces++;
      }
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  assert(finish === 'stop', `finish_reason ${finish}`);
  assert(usage && usage.completion_tokens === pieces, `usage ${JSON.stringify(usage)} vs ${pieces} pieces`);
  assert(JSON.stringify(commands(text)) === JSON.stringify(plainCommands), 'streamed commands differ');
});

await check('openai: RateLimitError for a 429 fault (no retries)', async () => {
  await admin('/admin/faults', { script: 'next 1 429' });
  try {
    await openai.chat.completions.create(
      { model: 'm', messages: [{ role: 'user', content: 'hi' }] },
      { maxRetries: 0 },
    );
    throw new Error('no error raised');
  } catch (e) {
    assert(e instanceof OpenAI.RateLimitError, `got ${e?.constructor?.name}: ${e}`);
    assert(e.status === 429, `status ${e.status}`);
    assert(e.headers.get('retry-after') !== null, 'no retry-after header');
  }
});

await check('openai: SDK retries a 503 and a 429 and succeeds', async () => {
  await admin('/admin/config', { retry_after: '20ms' });
  await admin('/admin/faults', { script: 'next 1 503; next 1 429' });
  const t0 = Date.now();
  const r = await openai.chat.completions.create({
    model: 'm',
    messages: [{ role: 'user', content: 'Install package: redis' }],
  });
  assert(commands(r.choices[0].message.content).includes('sudo apt-get install -y redis-server'), 'content');
  const left = (await admin('/admin/faults')).pending ?? null;
  assert(left === null || left === 0, `scripted faults left: ${left}`);
  assert(Date.now() - t0 < 10000, 'retries took too long');
});

await check('openai: AuthenticationError for a wrong key', async () => {
  const bad = new OpenAI({ apiKey: 'sk-wrong', baseURL: `${base}/v1`, maxRetries: 0 });
  try {
    await bad.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
    throw new Error('no error raised');
  } catch (e) {
    assert(e instanceof OpenAI.AuthenticationError, `got ${e?.constructor?.name}: ${e}`);
  }
});

let anthropicText;

await check('anthropic: messages.create', async () => {
  const m = await anthropic.messages.create({
    model: 'claude-3-5-haiku-latest',
    max_tokens: 1024,
    system: SYSTEM,
    messages: [{ role: 'user', content: 'Diagnose error: E: Unable to locate package foobar' }],
  });
  assert(m.type === 'message' && m.role === 'assistant', 'type/role');
  assert(m.stop_reason === 'end_turn', `stop_reason ${m.stop_reason}`);
  assert(m.content[0].type === 'text', 'content type');
  anthropicText = m.content[0].text;
  assert(commands(anthropicText).includes('apt-cache search --names-only foobar'), 'diagnosis command');
  assert(m.usage.input_tokens > 0 && m.usage.output_tokens > 10, 'usage');
});

await check('anthropic: messages.stream helper (text events, finalMessage)', async () => {
  const stream = anthropic.messages.stream({
    model: 'claude-3-5-haiku-latest',
    max_tokens: 1024,
    system: SYSTEM,
    messages: [{ role: 'user', content: 'Hardware check: gpu RTX 4090' }],
  });
  let text = '';
  let pieces = 0;
  stream.on('text', (t) => {
    text += t;
    pieces++;
  });
  const final = await stream.finalMessage();
  assert(final.content[0].text === text, 'final text differs from streamed text');
  assert(final.usage.output_tokens === pieces, `output_tokens ${final.usage.output_tokens} vs ${pieces}`);
  assert(final.stop_reason === 'end_turn', `stop_reason ${final.stop_reason}`);
  assert(commands(text).includes('nvidia-smi'), 'gpu command');
});

await check('anthropic: raw stream events in order', async () => {
  const stream = await anthropic.messages.create({
    model: 'claude-3-5-haiku-latest',
    max_tokens: 1024,
    messages: [{ role: 'user', content: 'Diagnose error: E: Unable to locate package foobar' }],
    stream: true,
  });
  const types = [];
  let text = '';
  for await (const ev of stream) {
    types.push(ev.type);
    if (ev.type === 'content_block_delta') text += ev.delta.text;
  }
  const seq = types.filter((t, i) => t !== 'content_block_delta' || types[i - 1] !== 'content_block_delta');
  const want = ['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop'];
  assert(JSON.stringify(seq.filter((t) => t !== 'ping')) === JSON.stringify(want), `events ${seq.join(',')}`);
  assert(JSON.stringify(commands(text)) === JSON.stringify(commands(anthropicText)), 'streamed commands differ');
});

await check('anthropic: 529 overloaded fault raises with the API error body', async () => {
  await admin('/admin/faults', { script: 'next 1 529' });
  try {
    await anthropic.messages.create(
      { model: 'm', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] },
      { maxRetries: 0 },
    );
    throw new Error('no error raised');
  } catch (e) {
    assert(e instanceof Anthropic.APIError, `got ${e?.constructor?.name}: ${e}`);
    assert(e.status === 529, `status ${e.status}`);
    assert(e.error?.error?.type === 'overloaded_error', `error ${JSON.stringify(e.error)}`);
  }
});

await check('anthropic: SDK retries a 429 and succeeds', async () => {
  await admin('/admin/faults', { script: 'next 1 429' });
  const m = await anthropic.messages.create({
    model: 'm',
    max_tokens: 1024,
    messages: [{ role: 'user', content: 'Install package: docker' }],
  });
  assert(commands(m.content[0].text).includes('sudo apt-get install -y docker.io'), 'content');
});

await check('both: max_tokens cuts the reply (length / max_tokens)', async () => {
  const o = await openai.chat.completions.create({
    model: 'm',
    max_completion_tokens: 5,
    messages: [{ role: 'user', content: 'Install package: docker' }],
  });
  assert(o.choices[0].finish_reason === 'length', `finish_reason ${o.choices[0].finish_reason}`);
  assert(o.usage.completion_tokens === 5, `completion_tokens ${o.usage.completion_tokens}`);
  const a = await anthropic.messages.create({
    model: 'm',
    max_tokens: 5,
    messages: [{ role: 'user', content: 'Install package: docker' }],
  });
  assert(a.stop_reason === 'max_tokens', `stop_reason ${a.stop_reason}`);
  assert(a.usage.output_tokens === 5, `output_tokens ${a.usage.output_tokens}`);
});

await check('anthropic: AuthenticationError for a wrong key', async () => {
  const bad = new Anthropic({ apiKey: 'sk-wrong', baseURL: base, maxRetries: 0 });
  try {
    await bad.messages.create({ model: 'm', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] });
    throw new Error('no error raised');
  } catch (e) {
    assert(e instanceof Anthropic.AuthenticationError, `got ${e?.constructor?.name}: ${e}`);
  }
});

await check('openai: embeddings.create (SDK default base64, decoded)', async () => {
  const r = await openai.embeddings.create({ model: 'text-embedding-3-small', input: ['hello', 'world', 'hello'] });
  assert(r.object === 'list' && r.data.length === 3, `shape ${r.object} ${r.data.length}`);
  const [a, b, c] = r.data.map((d) => d.embedding);
  assert(Array.isArray(a) && a.length === 1536, `length ${a?.length}`);
  const norm = Math.sqrt(a.reduce((s, x) => s + x * x, 0));
  assert(Math.abs(norm - 1) < 1e-4, `norm ${norm}`);
  assert(JSON.stringify(a) === JSON.stringify(c), 'same text, different vectors');
  assert(JSON.stringify(a) !== JSON.stringify(b), 'different texts, same vector');
  assert(r.usage.prompt_tokens > 0 && r.usage.total_tokens === r.usage.prompt_tokens, 'usage');
});

await check('openai: embeddings.create float, dimensions 8', async () => {
  const r = await openai.embeddings.create({ model: 'e', input: 'hello', dimensions: 8, encoding_format: 'float' });
  assert(r.data[0].embedding.length === 8, `length ${r.data[0].embedding.length}`);
  const full = await openai.embeddings.create({ model: 'e', input: 'hello', dimensions: 8 });
  const d = r.data[0].embedding.map((x, i) => Math.abs(x - full.data[0].embedding[i]));
  assert(Math.max(...d) < 1e-6, 'float and base64 encodings differ');
});

await check('openai: completions.create (legacy), max_tokens default 16', async () => {
  const r = await openai.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'Install package: nginx' });
  assert(r.object === 'text_completion', `object ${r.object}`);
  assert(typeof r.choices[0].text === 'string' && r.choices[0].text.length > 0, 'text');
  assert(r.choices[0].finish_reason === 'length' && r.usage.completion_tokens === 16, `finish ${r.choices[0].finish_reason} ${r.usage.completion_tokens}`);
  const full = await openai.completions.create({ model: 'm', prompt: 'Install package: nginx', max_tokens: 4000 });
  assert(full.choices[0].finish_reason === 'stop', 'finish_reason');
  assert(commands(full.choices[0].text).includes('sudo apt-get install -y nginx'), 'nginx install command missing');
  const stream = await openai.completions.create({
    model: 'm', prompt: 'Install package: nginx', max_tokens: 4000, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let usage = null;
  for await (const chunk of stream) {
    for (const ch of chunk.choices) text += ch.text;
    if (chunk.usage) usage = chunk.usage;
  }
  assert(text === full.choices[0].text, 'streamed text differs');
  assert(usage && usage.completion_tokens === full.usage.completion_tokens, `usage ${JSON.stringify(usage)}`);
});

let responseText;

await check('openai: responses.create (output_text, usage)', async () => {
  const r = await openai.responses.create({
    model: 'gpt-4o-mini',
    instructions: SYSTEM,
    input: [{ role: 'user', content: [{ type: 'input_text', text: 'Install package: nginx' }] }],
  });
  assert(r.object === 'response' && r.status === 'completed', `object ${r.object} ${r.status}`);
  responseText = r.output_text;
  assert(commands(responseText).includes('sudo apt-get install -y nginx'), 'nginx install command missing');
  assert(r.usage.total_tokens === r.usage.input_tokens + r.usage.output_tokens, 'usage');
});

await check('openai: responses.stream helper (deltas, finalResponse)', async () => {
  const stream = openai.responses.stream({
    model: 'gpt-4o-mini',
    instructions: SYSTEM,
    input: [{ role: 'user', content: [{ type: 'input_text', text: 'Install package: nginx' }] }],
  });
  let text = '';
  let deltas = 0;
  stream.on('response.output_text.delta', (ev) => {
    text += ev.delta;
    deltas++;
  });
  const final = await stream.finalResponse();
  assert(text === responseText, 'streamed text differs from the non-streaming one');
  assert(final.output_text === text, 'finalResponse text differs');
  assert(final.usage.output_tokens === deltas, `output_tokens ${final.usage.output_tokens} vs ${deltas}`);
});

await check('openai: responses raw stream events in order; max_output_tokens gives incomplete', async () => {
  const stream = await openai.responses.create({ model: 'm', input: 'Install package: nginx', stream: true, max_output_tokens: 4 });
  const types = [];
  let last = null;
  for await (const ev of stream) {
    types.push(ev.type);
    assert(ev.sequence_number === types.length - 1, `sequence_number ${ev.sequence_number}`);
    last = ev;
  }
  const want = ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added',
    'response.output_text.delta', 'response.output_text.delta', 'response.output_text.delta', 'response.output_text.delta',
    'response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.incomplete'];
  assert(JSON.stringify(types) === JSON.stringify(want), `events ${types.join(',')}`);
  assert(last.response.incomplete_details.reason === 'max_output_tokens', 'incomplete reason');
});

// ---- tools and structured output ----

const PKG_SCHEMA = {
  type: 'object',
  properties: { package: { type: 'string' }, include_deps: { type: 'boolean' } },
  required: ['package', 'include_deps'],
  additionalProperties: false,
};
const PKG_Q = 'What is the package info for nginx?';
const chatTools = [
  { type: 'function', function: { name: 'get_weather', description: 'Current weather for a city', parameters: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'], additionalProperties: false }, strict: true } },
  { type: 'function', function: { name: 'get_package_info', description: 'Look up a Debian package', parameters: PKG_SCHEMA, strict: true } },
];
const anthropicTools = [{ name: 'get_package_info', description: 'Look up a Debian package', input_schema: PKG_SCHEMA }];
const respTools = [{ type: 'function', name: 'get_package_info', description: 'Look up a Debian package', parameters: PKG_SCHEMA, strict: true }];

function checkPkgArgs(args) {
  assert(args && typeof args === 'object', `arguments ${JSON.stringify(args)}`);
  assert(args.package === 'nginx', `package ${args.package}`);
  assert(typeof args.include_deps === 'boolean', 'include_deps');
  assert(Object.keys(args).sort().join() === 'include_deps,package', `keys ${Object.keys(args)}`);
}

let chatArgs;

await check('openai: chat tools -> tool_calls (finish_reason tool_calls, schema-valid arguments)', async () => {
  const r = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: PKG_Q }], tools: chatTools });
  const c = r.choices[0];
  assert(c.finish_reason === 'tool_calls', `finish_reason ${c.finish_reason}`);
  assert(c.message.content === null, 'content not null');
  const tc = c.message.tool_calls[0];
  assert(tc.type === 'function' && tc.function.name === 'get_package_info' && tc.id.startsWith('call_'), JSON.stringify(tc));
  chatArgs = tc.function.arguments;
  checkPkgArgs(JSON.parse(chatArgs));
  const again = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: PKG_Q }], tools: chatTools });
  assert(again.choices[0].message.tool_calls[0].function.arguments === chatArgs, 'same request, different arguments');
});

await check('openai: chat.completions.stream helper reassembles tool call arguments', async () => {
  const stream = openai.chat.completions.stream({ model: 'm', messages: [{ role: 'user', content: PKG_Q }], tools: chatTools });
  let deltas = 0;
  let parsed = null;
  stream.on('tool_calls.function.arguments.delta', () => deltas++);
  stream.on('tool_calls.function.arguments.done', (ev) => { parsed = ev.parsed_arguments; });
  const final = await stream.finalChatCompletion();
  const tc = final.choices[0].message.tool_calls[0];
  assert(final.choices[0].finish_reason === 'tool_calls', `finish_reason ${final.choices[0].finish_reason}`);
  assert(deltas > 3, `only ${deltas} argument deltas`);
  assert(tc.function.name === 'get_package_info', `name ${tc.function.name}`);
  assert(tc.function.arguments === chatArgs, `streamed ${tc.function.arguments} vs ${chatArgs}`);
  checkPkgArgs(parsed); // the SDK parsed the strict tool's arguments itself
});

await check('openai: chat.completions.runTools runs the tool and gets a final answer', async () => {
  const calls = [];
  const runner = openai.chat.completions.runTools({
    model: 'm',
    messages: [{ role: 'user', content: PKG_Q }],
    tools: [{
      type: 'function',
      function: {
        name: 'get_package_info', description: 'Look up a Debian package', parameters: PKG_SCHEMA, parse: JSON.parse,
        function: (args) => { calls.push(args); return { name: args.package, version: '1.24.0' }; },
      },
    }],
  });
  const text = await runner.finalContent();
  assert(calls.length === 1, `tool ran ${calls.length} times`);
  checkPkgArgs(calls[0]);
  assert(text.includes('1.24.0') && text.includes('get_package_info'), `final ${text}`);
  assert(runner.messages.some((m) => m.role === 'tool'), 'no tool message sent');
});

await check('openai: chat.completions.parse with response_format json_schema', async () => {
  const schema = { type: 'object', properties: { package: { type: 'string' }, commands: { type: 'array', items: { type: 'string' }, minItems: 1 }, risk: { type: 'string', enum: ['low', 'high'] } }, required: ['package', 'commands', 'risk'], additionalProperties: false };
  const r = await openai.chat.completions.parse({
    model: 'm', messages: [{ role: 'user', content: 'Install redis' }],
    response_format: { type: 'json_schema', json_schema: { name: 'plan', schema, strict: true } },
  });
  const p = r.choices[0].message.parsed;
  assert(p && p.package === 'redis', `parsed ${JSON.stringify(p)}`);
  assert(Array.isArray(p.commands) && p.commands.length >= 1 && p.commands.every((c) => typeof c === 'string'), 'commands');
  assert(['low', 'high'].includes(p.risk), `risk ${p.risk}`);
  const stream = openai.chat.completions.stream({
    model: 'm', messages: [{ role: 'user', content: 'Install redis' }],
    response_format: { type: 'json_schema', json_schema: { name: 'plan', schema, strict: true } },
  });
  const final = await stream.finalChatCompletion(); // parsed stays null without a zod format
  assert(JSON.stringify(JSON.parse(final.choices[0].message.content)) === JSON.stringify(p), 'streamed document differs');
});

await check('openai: BadRequestError naming tool_choice / response_format', async () => {
  for (const [body, param] of [
    [{ tools: chatTools, tool_choice: { type: 'function', function: { name: 'nope' } } }, 'tool_choice'],
    [{ tools: [{ type: 'function', function: { description: 'no name' } }] }, 'tools'],
    [{ response_format: { type: 'json_object' } }, 'response_format'],
  ]) {
    try {
      await openai.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...body }, { maxRetries: 0 });
      throw new Error('no error raised');
    } catch (e) {
      assert(e instanceof OpenAI.BadRequestError, `got ${e?.constructor?.name}: ${e}`);
      assert(e.param === param, `param ${e.param} (want ${param}): ${e.message}`);
    }
  }
});

await check('openai: responses function_call (create, stream helper, function_call_output)', async () => {
  const r = await openai.responses.create({ model: 'm', input: PKG_Q, tools: respTools });
  const fc = r.output[0];
  assert(fc.type === 'function_call' && fc.name === 'get_package_info', JSON.stringify(fc));
  checkPkgArgs(JSON.parse(fc.arguments));
  const stream = openai.responses.stream({ model: 'm', input: PKG_Q, tools: respTools });
  let acc = '';
  stream.on('response.function_call_arguments.delta', (ev) => { acc += ev.delta; });
  const final = await stream.finalResponse();
  assert(acc === fc.arguments, `streamed ${acc}`);
  assert(final.output[0].arguments === fc.arguments && final.output[0].call_id === fc.call_id, 'final item differs');
  const next = await openai.responses.create({
    model: 'm', tools: respTools,
    input: [{ role: 'user', content: PKG_Q }, fc, { type: 'function_call_output', call_id: fc.call_id, output: 'nginx 1.24.0' }],
  });
  assert(next.output_text.includes('nginx 1.24.0'), `answer ${next.output_text}`);
});

await check('openai: responses.parse with text.format json_schema', async () => {
  const r = await openai.responses.parse({
    model: 'm', input: PKG_Q, text: { format: { type: 'json_schema', name: 'pkg', schema: PKG_SCHEMA, strict: true } },
  });
  checkPkgArgs(r.output_parsed);
});

let anthropicInput;

await check('anthropic: messages.create tools -> tool_use (stop_reason tool_use)', async () => {
  const m = await anthropic.messages.create({ model: 'claude-3-5-haiku-latest', max_tokens: 1024, messages: [{ role: 'user', content: PKG_Q }], tools: anthropicTools });
  assert(m.stop_reason === 'tool_use', `stop_reason ${m.stop_reason}`);
  const b = m.content[0];
  assert(b.type === 'tool_use' && b.name === 'get_package_info' && b.id.startsWith('toolu_'), JSON.stringify(b));
  checkPkgArgs(b.input);
  anthropicInput = b.input;
});

await check('anthropic: messages.stream finalMessage with tool_use input (input_json_delta)', async () => {
  const stream = anthropic.messages.stream({ model: 'm', max_tokens: 1024, messages: [{ role: 'user', content: PKG_Q }], tools: anthropicTools, tool_choice: { type: 'tool', name: 'get_package_info' } });
  let pieces = 0;
  stream.on('inputJson', () => pieces++);
  const final = await stream.finalMessage();
  assert(final.stop_reason === 'tool_use', `stop_reason ${final.stop_reason}`);
  assert(pieces > 3, `only ${pieces} input_json_delta pieces`);
  assert(JSON.stringify(final.content[0].input) === JSON.stringify(anthropicInput), `input ${JSON.stringify(final.content[0].input)}`);
});

await check('anthropic: tool_result turn answered in text; orphan tool_result is a 400', async () => {
  const first = await anthropic.messages.create({ model: 'm', max_tokens: 1024, messages: [{ role: 'user', content: PKG_Q }], tools: anthropicTools });
  const use = first.content[0];
  const m = await anthropic.messages.create({
    model: 'm', max_tokens: 1024, tools: anthropicTools,
    messages: [
      { role: 'user', content: PKG_Q },
      { role: 'assistant', content: first.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'nginx 1.24.0' }] },
    ],
  });
  assert(m.stop_reason === 'end_turn' && m.content[0].type === 'text', `stop ${m.stop_reason}`);
  assert(m.content[0].text.includes('nginx 1.24.0'), `answer ${m.content[0].text}`);
  try {
    await anthropic.messages.create({
      model: 'm', max_tokens: 10,
      messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_x', content: 'r' }] }],
    }, { maxRetries: 0 });
    throw new Error('no error raised');
  } catch (e) {
    assert(e instanceof Anthropic.BadRequestError, `got ${e?.constructor?.name}: ${e}`);
    assert(/tool_use_id/.test(e.message), e.message);
  }
});

await check('anthropic: messages.parse with output_config.format, and streamed', async () => {
  const m = await anthropic.messages.parse({
    model: 'm', max_tokens: 1024, messages: [{ role: 'user', content: PKG_Q }],
    output_config: { format: jsonSchemaOutputFormat(PKG_SCHEMA) },
  });
  checkPkgArgs(m.parsed_output);
  const stream = anthropic.messages.stream({
    model: 'm', max_tokens: 1024, messages: [{ role: 'user', content: PKG_Q }],
    output_config: { format: { type: 'json_schema', schema: PKG_SCHEMA } },
  });
  const final = await stream.finalMessage();
  assert(JSON.stringify(JSON.parse(final.content[0].text)) === JSON.stringify(m.parsed_output), 'streamed document differs');
});

await check('both: parallel tool calls through the stream helpers', async () => {
  const q = 'What is the weather in Paris, and the package info for nginx?';
  const o = await openai.chat.completions.stream({ model: 'm', messages: [{ role: 'user', content: q }], tools: chatTools }).finalChatCompletion();
  const calls = o.choices[0].message.tool_calls;
  assert(calls.length === 2, `${calls.length} tool calls`);
  assert(calls[0].function.name === 'get_package_info' && calls[1].function.name === 'get_weather', 'names');
  checkPkgArgs(JSON.parse(calls[0].function.arguments));
  assert(JSON.parse(calls[1].function.arguments).location === 'Paris', calls[1].function.arguments);
  const a = await anthropic.messages.stream({
    model: 'm', max_tokens: 1024, messages: [{ role: 'user', content: q }],
    tools: [...anthropicTools, { name: 'get_weather', description: 'Current weather for a city', input_schema: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] } }],
  }).finalMessage();
  assert(a.content.length === 2 && a.content.every((b) => b.type === 'tool_use'), JSON.stringify(a.content));
  checkPkgArgs(a.content[0].input);
  assert(a.content[1].input.location === 'Paris', JSON.stringify(a.content[1].input));
  const r = await openai.responses.stream({ model: 'm', input: q, tools: [...respTools, { type: 'function', name: 'get_weather', parameters: { type: 'object', properties: { location: { type: 'string' } } } }] }).finalResponse();
  assert(r.output.length === 2 && r.output[1].name === 'get_weather', JSON.stringify(r.output));
  checkPkgArgs(JSON.parse(r.output[0].arguments));
});

await check('anthropic: beta toolRunner runs the tool and ends in text', async () => {
  const calls = [];
  const tool = betaTool({
    name: 'get_package_info', description: 'Look up a Debian package', inputSchema: PKG_SCHEMA,
    run: (args) => { calls.push(args); return `${args.package} 1.24.0`; },
  });
  const final = await anthropic.beta.messages.toolRunner({ model: 'm', max_tokens: 1024, messages: [{ role: 'user', content: PKG_Q }], tools: [tool] });
  assert(calls.length === 1, `tool ran ${calls.length} times`);
  checkPkgArgs(calls[0]);
  assert(final.stop_reason === 'end_turn', `stop_reason ${final.stop_reason}`);
  assert(final.content[0].text.includes('nginx 1.24.0'), `final ${final.content[0].text}`);
});

await check('request log: the SDK call as sent, key redacted', async () => {
  await fetch(`${base}/admin/requests`, { method: 'DELETE' });
  await openai.embeddings.create({ model: 'logged-model', input: 'log me' });
  let log;
  for (let i = 0; i < 100; i++) { // the entry lands when the server finishes the request
    log = await admin('/admin/requests');
    if (log.count > 0) break;
    await new Promise((res) => setTimeout(res, 10));
  }
  const e = log.requests[0];
  assert(e.route === 'embeddings' && e.model === 'logged-model' && e.status === 200, JSON.stringify(e).slice(0, 300));
  assert(e.body.input === 'log me', 'body');
  const auth = Object.entries(e.headers).find(([k]) => k.toLowerCase() === 'authorization');
  assert(auth && auth[1] === '[redacted]', `authorization ${auth}`);
  assert(!JSON.stringify(log).includes(key), 'the key is in the log');
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
