// The dashboards, as the JSON files docker/grafana/dashboards/ holds: `npm run dashboards`
// writes them (generate.ts), and test/docker/dashboards.test fails when they drift from here.
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { health } from './health.js';
import { slowRequests } from './slow-requests.js';
import { waits } from './waits.js';

export const DASHBOARDS: { file: string; build: () => Dashboard }[] = [
  { file: 'causeway-health.json', build: health },
  { file: 'causeway-kernel-waits.json', build: waits },
  { file: 'causeway-slow-requests.json', build: slowRequests },
];

/** A dashboard file's text. */
export const render = (dashboard: Dashboard) => `${JSON.stringify(dashboard, null, 2)}\n`;
