// Package sysprio lowers the CPU and IO priority of the running process, so
// that a backup competes as little as possible with the database it copies:
// Cassandra and HBase nodes are latency-sensitive and a backup is not.
package sysprio

// Nice is the CPU priority Lower sets: the lowest there is.
const Nice = 19
