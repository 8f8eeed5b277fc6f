// Boost.Interprocess peer of bench_queue.c: boost::interprocess::message_queue throughput with
// np producers and np consumers, each a process made with fork(). bench_queue runs this program
// (when it was built, i.e. Boost was found) and prints the ratios mproc/Boost.
//
// usage: bench_queue_boost SIZE COUNT PRODUCERS   -> prints "<msgs/s> <GB/s>" on one line
// Exit code 0 on success; 1 with a message on stderr otherwise.
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <boost/interprocess/ipc/message_queue.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace bip = boost::interprocess;

namespace {

double now() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Boost caps a message's size when the queue is made: size the queue for this run only, with
// about 16 MiB of slots (at least 4, at most 1024).
size_t slots_for(size_t size) {
  size_t n = (16u << 20) / (size ? size : 1);
  return n < 4 ? 4 : (n > 1024 ? 1024 : n);
}

int produce(const char *name, size_t size, long count) {
  try {
    bip::message_queue q(bip::open_only, name);
    std::vector<char> m(size ? size : 1, 'x');
    for (long i = 0; i < count; i++) q.send(m.data(), size, 0);
    return 0;
  } catch (const std::exception &e) {
    fprintf(stderr, "bench_queue_boost: producer: %s\n", e.what());
    return 1;
  }
}

int consume(const char *name, size_t size, long count) {
  try {
    bip::message_queue q(bip::open_only, name);
    std::vector<char> m(size ? size : 1);
    bip::message_queue::size_type got;
    unsigned prio;
    for (long i = 0; i < count; i++) q.receive(m.data(), m.size(), got, prio);
    return 0;
  } catch (const std::exception &e) {
    fprintf(stderr, "bench_queue_boost: consumer: %s\n", e.what());
    return 1;
  }
}

pid_t spawn(int (*fn)(const char *, size_t, long), const char *name, size_t size, long count) {
  pid_t pid = fork();
  if (pid == 0) _exit(fn(name, size, count));
  if (pid < 0) {
    perror("bench_queue_boost: fork");
    exit(1);
  }
  return pid;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s SIZE COUNT PRODUCERS\n", argv[0]);
    return 1;
  }
  const size_t size = strtoull(argv[1], nullptr, 10);
  const long count = strtol(argv[2], nullptr, 10);
  const int np = atoi(argv[3]);
  if (count <= 0 || np <= 0 || np > 8) {
    fprintf(stderr, "bench_queue_boost: bad COUNT or PRODUCERS\n");
    return 1;
  }
  const std::string name = "mproc_bench_boost_" + std::to_string(getpid());
  const long per = count / np;
  bip::message_queue::remove(name.c_str());
  try {
    bip::message_queue q(bip::create_only, name.c_str(), slots_for(size), size ? size : 1);
  } catch (const std::exception &e) {
    fprintf(stderr, "bench_queue_boost: create: %s\n", e.what());
    return 1;
  }
  std::vector<pid_t> kids;
  const double t0 = now();
  for (int i = 0; i < np; i++) kids.push_back(spawn(consume, name.c_str(), size, per));
  for (int i = 0; i < np; i++) kids.push_back(spawn(produce, name.c_str(), size, per));
  int failed = 0;
  for (pid_t k : kids) {
    int st = 0;
    pid_t r;
    while ((r = waitpid(k, &st, 0)) < 0 && errno == EINTR) {
    }
    if (r < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) failed = 1;
  }
  const double dt = now() - t0;
  bip::message_queue::remove(name.c_str());
  if (failed) {
    fprintf(stderr, "bench_queue_boost: a producer or consumer failed\n");
    return 1;
  }
  const double rate = static_cast<double>(per * np) / dt;
  printf("%.1f %.3f\n", rate, rate * static_cast<double>(size) / 1e9);
  return 0;
}
