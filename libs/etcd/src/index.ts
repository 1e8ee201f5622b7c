/**
 * @hourglass/etcd: the cluster coordinator on etcd (the only package that imports etcd3).
 * docs/cluster.md describes the protocol.
 */
export { EtcdCoordinator } from './coordinator';
export type { EtcdCoordinatorOptions } from './coordinator';
export type { NodeInfo } from './keys';
