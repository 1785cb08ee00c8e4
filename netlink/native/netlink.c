// The smallest native piece shoal needs: Node has no AF_NETLINK sockets. This addon opens a
// NETLINK_ROUTE socket inside a chosen network namespace, sends datagrams to the kernel and hands
// every received datagram to a JavaScript callback from the event loop. All message encoding and
// decoding lives in TypeScript (netlink/*.ts).
//
// JS surface (see netlink/native.ts for the typed view):
//   open(netnsPath: string | null, groups: number, rcvbuf: number,
//        onDatagram: (data: Buffer | null, errno: number) => void): Socket  (an external)
//   portId(socket): number           the port id the kernel bound us to
//   send(socket, data: Buffer): void  throws on error (error.errno set)
//   ref(socket, on: boolean): void    whether the socket keeps the event loop alive
//   close(socket): void
//   strerror(errno: number): string   the C library's message, e.g. "File exists"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <node_api.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif

typedef struct nl_socket {
  napi_env env;
  int fd;
  int closed;          // close() ran: fd closed, poll stopped
  int handle_closed;   // libuv finished closing the poll handle
  int finalized;       // the JS external was garbage-collected
  uv_poll_t poll;
  napi_ref callback;
  napi_async_context async_context;
} nl_socket;

static napi_value throw_errno(napi_env env, const char* what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value message, error, code;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, NULL, message, &error);
  napi_create_int32(env, err, &code);
  napi_set_named_property(env, error, "errno", code);
  napi_throw(env, error);
  return NULL;
}

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) {                                          \
      napi_throw_error(env, NULL, "netlink addon: " #call " failed"); \
      return NULL;                                                    \
    }                                                                 \
  } while (0)

// Creates the socket in the namespace at `path` by switching this thread's network namespace
// around the socket() call; a socket keeps the namespace it was created in for its whole life.
// Only the calling thread switches (setns acts per thread), and it always switches back.
static int socket_in_netns(const char* path, int* err) {
  if (path == NULL) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
    if (fd < 0) *err = errno;
    return fd;
  }
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    *err = errno;
    return -1;
  }
  int original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (original < 0) {
    *err = errno;
    close(target);
    return -1;
  }
  int fd = -1;
  if (setns(target, CLONE_NEWNET) < 0) {
    *err = errno;
  } else {
    fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
    if (fd < 0) *err = errno;
    if (setns(original, CLONE_NEWNET) < 0) {
      // Carrying on would run the whole process's main thread in the wrong namespace.
      fprintf(stderr, "netlink addon: cannot return to the original network namespace: %s\n",
              strerror(errno));
      abort();
    }
  }
  close(original);
  close(target);
  return fd;
}

// The struct is shared by libuv (the poll handle) and JS (the external): freed when both let go.
static void on_handle_closed(uv_handle_t* handle) {
  nl_socket* s = (nl_socket*)handle->data;
  s->handle_closed = 1;
  if (s->finalized) free(s);
}

// Stops polling and releases everything but the struct, which the uv close callback frees.
static void shutdown_socket(nl_socket* s) {
  if (s->closed) return;
  s->closed = 1;
  uv_poll_stop(&s->poll);
  close(s->fd);
  s->fd = -1;
  if (s->callback != NULL) napi_delete_reference(s->env, s->callback);
  s->callback = NULL;
  if (s->async_context != NULL) napi_async_destroy(s->env, s->async_context);
  s->async_context = NULL;
  uv_close((uv_handle_t*)&s->poll, on_handle_closed);
}

static void env_cleanup(void* arg) {
  shutdown_socket((nl_socket*)arg);
}

static void deliver(nl_socket* s, napi_value data, int err) {
  if (s->closed) return;
  napi_env env = s->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, recv, args[2], result;
  if (napi_get_reference_value(env, s->callback, &callback) == napi_ok && callback != NULL) {
    napi_get_global(env, &recv);  // make_callback wants an object receiver
    if (data == NULL) napi_get_null(env, &args[0]);
    else args[0] = data;
    napi_create_int32(env, err, &args[1]);
    // make_callback runs the microtask queue afterwards, so awaiting code resumes promptly.
    napi_make_callback(env, s->async_context, recv, callback, 2, args, &result);
    // Nobody up the stack can catch a throw from an event-loop callback: hand it to Node's
    // uncaughtException machinery instead of leaving it pending until some later call.
    bool pending = false;
    napi_value exception;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending &&
        napi_get_and_clear_last_exception(env, &exception) == napi_ok)
      napi_fatal_exception(env, exception);
  }
  napi_close_handle_scope(env, scope);
}

// Reads every queued datagram (each sized first so that none is truncated). A socket error
// (ENOBUFS: the kernel dropped messages for us) is reported only after the queue is drained:
// draining clears the kernel's "congested" mark, so whatever JS does about the error (re-list,
// change things) is notified again instead of being dropped too.
static void on_readable(uv_poll_t* handle, int status, int events) {
  nl_socket* s = (nl_socket*)handle->data;
  int pending_err = 0;
  if (status < 0) {
    // libuv reports EPOLLERR as UV_EBADF and stops the watcher. On a netlink socket that is
    // usually a pending socket error such as ENOBUFS: read and clear it, and keep listening.
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr == 0) {
      deliver(s, NULL, -status);  // a real failure of the descriptor: stay stopped
      return;
    }
    pending_err = soerr;
    int rc = uv_poll_start(&s->poll, UV_READABLE, on_readable);
    if (rc < 0) {
      deliver(s, NULL, soerr);
      deliver(s, NULL, -rc);
      return;
    }
  } else if (!(events & UV_READABLE)) {
    return;
  }
  while (!s->closed) {
    ssize_t size = recv(s->fd, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
    if (size < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno != EINTR) pending_err = errno;
      continue;
    }
    napi_handle_scope scope;
    if (napi_open_handle_scope(s->env, &scope) != napi_ok) break;
    void* bytes;
    napi_value buffer;
    size_t capacity = size > 0 ? (size_t)size : 1;
    if (napi_create_buffer(s->env, capacity, &bytes, &buffer) != napi_ok) {
      napi_close_handle_scope(s->env, scope);
      break;
    }
    ssize_t got = recv(s->fd, bytes, capacity, MSG_DONTWAIT);
    if (got < 0) {
      int err = errno;
      napi_close_handle_scope(s->env, scope);
      if (err == EAGAIN || err == EWOULDBLOCK) break;
      if (err != EINTR) pending_err = err;
      continue;
    }
    napi_value view = buffer;
    if ((size_t)got != capacity) {
      napi_value subarray, args[2];
      napi_get_named_property(s->env, buffer, "subarray", &subarray);
      napi_create_int32(s->env, 0, &args[0]);
      napi_create_int32(s->env, (int32_t)got, &args[1]);
      napi_call_function(s->env, buffer, subarray, 2, args, &view);
    }
    deliver(s, view, 0);
    napi_close_handle_scope(s->env, scope);
  }
  if (pending_err != 0) deliver(s, NULL, pending_err);
}

static void finalize_socket(napi_env env, void* data, void* hint) {
  (void)hint;
  nl_socket* s = (nl_socket*)data;
  s->finalized = 1;
  if (!s->closed) {
    napi_remove_env_cleanup_hook(env, env_cleanup, s);
    shutdown_socket(s);
  } else if (s->handle_closed) {
    free(s);
  }
}

static nl_socket* unwrap(napi_env env, napi_value value) {
  void* data = NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, NULL, "netlink addon: expected a socket");
    return NULL;
  }
  nl_socket* s = (nl_socket*)data;
  if (s->closed) {
    napi_throw_error(env, "ERR_SOCKET_CLOSED", "netlink socket is closed");
    return NULL;
  }
  return s;
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) {
    napi_throw_type_error(env, NULL, "open(netnsPath, groups, rcvbuf, onDatagram)");
    return NULL;
  }
  char path[4096];
  int has_path = 0;
  napi_valuetype type;
  CHECK(napi_typeof(env, argv[0], &type));
  if (type == napi_string) {
    size_t len;
    CHECK(napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len));
    has_path = 1;
  }
  uint32_t groups, rcvbuf;
  CHECK(napi_get_value_uint32(env, argv[1], &groups));
  CHECK(napi_get_value_uint32(env, argv[2], &rcvbuf));

  int err = 0;
  int fd = socket_in_netns(has_path ? path : NULL, &err);
  if (fd < 0) return throw_errno(env, has_path ? path : "socket", err);

  int one = 1;
  // Extended ACKs carry the kernel's own explanation ("Unknown device type"); capped ACKs
  // leave out the echo of our request.
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  if (rcvbuf > 0) {
    int size = (int)rcvbuf;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  }
  struct sockaddr_nl addr;
  memset(&addr, 0, sizeof addr);
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = groups;
  if (bind(fd, (struct sockaddr*)&addr, sizeof addr) < 0) {
    err = errno;
    close(fd);
    return throw_errno(env, "bind", err);
  }

  uv_loop_t* loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  nl_socket* s = calloc(1, sizeof *s);
  if (s == NULL) {
    close(fd);
    return throw_errno(env, "open", ENOMEM);
  }
  s->env = env;
  s->fd = fd;
  int rc = uv_poll_init(loop, &s->poll, fd);
  if (rc < 0) {
    close(fd);
    free(s);  // never handed to libuv nor JS
    return throw_errno(env, "uv_poll_init", -rc);
  }
  s->poll.data = s;
  napi_value resource_name;
  CHECK(napi_create_string_utf8(env, "NetlinkSocket", NAPI_AUTO_LENGTH, &resource_name));
  CHECK(napi_async_init(env, NULL, resource_name, &s->async_context));
  CHECK(napi_create_reference(env, argv[3], 1, &s->callback));
  rc = uv_poll_start(&s->poll, UV_READABLE, on_readable);
  if (rc < 0) {
    s->finalized = 1;  // JS never sees this one; the close callback frees it
    shutdown_socket(s);
    return throw_errno(env, "uv_poll_start", -rc);
  }
  CHECK(napi_add_env_cleanup_hook(env, env_cleanup, s));
  napi_value external;
  CHECK(napi_create_external(env, s, finalize_socket, NULL, &external));
  return external;
}

static napi_value js_port_id(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  nl_socket* s = unwrap(env, argv[0]);
  if (s == NULL) return NULL;
  struct sockaddr_nl addr;
  socklen_t len = sizeof addr;
  if (getsockname(s->fd, (struct sockaddr*)&addr, &len) < 0)
    return throw_errno(env, "getsockname", errno);
  napi_value result;
  CHECK(napi_create_uint32(env, addr.nl_pid, &result));
  return result;
}

static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  nl_socket* s = unwrap(env, argv[0]);
  if (s == NULL) return NULL;
  void* data;
  size_t length;
  CHECK(napi_get_buffer_info(env, argv[1], &data, &length));
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  ssize_t sent;
  do {
    sent = sendto(s->fd, data, length, 0, (struct sockaddr*)&kernel, sizeof kernel);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return throw_errno(env, "send", errno);
  return NULL;
}

static napi_value js_ref(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  nl_socket* s = unwrap(env, argv[0]);
  if (s == NULL) return NULL;
  bool on;
  CHECK(napi_get_value_bool(env, argv[1], &on));
  if (on) uv_ref((uv_handle_t*)&s->poll);
  else uv_unref((uv_handle_t*)&s->poll);
  return NULL;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void* data = NULL;
  CHECK(napi_get_value_external(env, argv[0], &data));
  nl_socket* s = (nl_socket*)data;
  if (s != NULL && !s->closed) {
    napi_remove_env_cleanup_hook(env, env_cleanup, s);
    shutdown_socket(s);
  }
  return NULL;
}

static napi_value js_strerror(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t err;
  CHECK(napi_get_value_int32(env, argv[0], &err));
  napi_value result;
  CHECK(napi_create_string_utf8(env, strerror(err), NAPI_AUTO_LENGTH, &result));
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"portId", NULL, js_port_id, NULL, NULL, NULL, napi_enumerable, NULL},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"ref", NULL, js_ref, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"strerror", NULL, js_strerror, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
