"""The four nodes: camera_publisher, state_publisher, policy_node, controller_bridge.

Each module holds a plain logic class (testable without a middleware), a thin node class that
wires it to a :class:`~vla_ros.transport.port.Port`, and ``main()``.
"""
