/** Test helpers other packages use (`@dro/artifacts/testing`): a real S3 server. */
export * from './seaweedfs.ts';
